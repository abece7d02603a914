"""The Streamlit dashboard, generated from the domain registry.

- :mod:`.shell`: the entry point: one page per registered domain plus the home page, through
  ``st.navigation`` (no hand-written page files);
- :mod:`.home`: the home page (domains, registered policies, training runs and their curves);
- :mod:`.compare`: the page of a domain: the generic comparison view every setting gets, and the
  setting's own tabs.

Streamlit is imported inside the functions that draw, so the pure helpers are testable without it.
"""
