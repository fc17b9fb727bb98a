"""Escalating pages: the state machine, its texts, the outcomes of running one, SMS acknowledgements."""
