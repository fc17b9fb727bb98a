"""The errbot face: the command classes mixed into ``AttSms`` (``errbot_plugin``); the only modules that import errbot."""
