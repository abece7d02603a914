"""decisionlab dashboard: the Streamlit entry point (``streamlit run dashboards/Home.py``).

Every page is generated from the domain registry (``decisionlab.core.dashboard.shell``): the home
page, then one page per registered domain with the generic policy comparison and the setting's own
tabs. No page is written by hand here.
"""

from decisionlab.core.dashboard.shell import main

main()
