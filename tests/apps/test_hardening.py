"""One rule for files and clean messages: no API parameter names a server path (in any domain), and an
error message never echoes control or bidirectional-format characters."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from decisionlab.apps.errors import printable
from decisionlab.core.scenario import SERVER_PATH
from decisionlab.core.spec import list_domains


@pytest.mark.parametrize(("domain", "scenario", "field"), [
    ("ride-hailing", "city_small", "trips_path"), ("ride-hailing", "city_small", "zones_path"),
    ("market-making", "lob_replay", "data_path"), ("inventory", "real_series", "data_path")])
def test_a_server_path_in_api_parameters_is_a_422_naming_it(client: TestClient, domain: str, scenario: str,
                                                           field: str) -> None:
    for path in ("/etc/shadow", "../../secrets", "C:\\\\windows"):
        response = client.post(f"/v1/{domain}/act", json={"scenario": scenario, "parameters": {field: path},
                                                           "policy": "x", "states": [{}]})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert field in detail and path not in detail and "reads no files" in detail


def test_every_path_field_of_every_domain_is_declared_as_one() -> None:
    """A scenario field whose name says it holds a path is a ``server_path`` (the API's rule reads that)."""
    for domain in list_domains():
        for setting in domain.settings:
            for name, info in setting.scenario_model.model_fields.items():
                if name.endswith("_path"):
                    assert (info.json_schema_extra or {}).get(SERVER_PATH), f"{domain.name}.{name}"


def test_json_nested_past_the_parsers_stack_is_a_4xx_not_a_500(client: TestClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"scenario": "lost_sales", "policy": "base_stock", "states": ' + deep + "}"
    for path in ("/v1/inventory/act", "/v1/inventory/orders"):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])
    # with a 300-digit integer too (the middleware that reads those parses the body first)
    long_integer = '{"s": ' + "[" * 3000 + "]" * 3000 + ', "x": ' + "9" * 400 + "}"
    response = client.post("/v1/inventory/act", content=long_integer, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text[:200]
    response = client.get("/v1/inventory/schema", params={"parameters": "[" * 4000 + "]" * 4000})
    assert response.status_code == 422 and "parameters" in response.text, response.text[:200]


def test_error_messages_never_echo_control_characters(client: TestClient) -> None:
    sneaky = "lost\x00_sa\u202eles\x1b[31m"
    response = client.post("/v1/inventory/act", json={"scenario": sneaky, "policy": "optimal", "states": [{}]})
    assert response.status_code in (404, 422)
    text = response.text
    assert "\x00" not in response.json()["detail"] and "\u202e" not in response.json()["detail"]
    assert "\\x00" in text or "\\\\x00" in text
    bad_state = client.post("/v1/inventory/act", json={"scenario": "lost_sales", "policy": "optimal",
                                                        "states": [{"on_hand": "1\x00\u202e"}]})
    assert bad_state.status_code == 422
    for problem in bad_state.json()["detail"]:
        assert all(ch.isprintable() for ch in problem["message"])
    assert printable("a\tb\u200fc") == "a\\tb\\u200fc" and printable("café ✓") == "café ✓"
