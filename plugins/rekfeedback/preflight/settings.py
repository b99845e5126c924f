"""Preflight: the settings themselves, before any AWS call."""

from __future__ import annotations

from rekfeedback import turn_config

from rekfeedback.preflight.checker import Checker

def check_settings(checker: Checker) -> None:
    """What can be seen without AWS: the shared validation of turn_config, one finding per setting."""
    try:
        turn_config.validate(checker.config)
    except turn_config.TurnConfigError as exc:
        for line in str(exc).splitlines():
            text = line.lstrip("- ").strip()
            if not text:
                continue
            name = next((s.name for s in turn_config.SETTINGS if text.startswith(s.name)), "settings")
            checker.bad_settings.add(name)
            checker.report.error("config", name, text,
                                 f"set {name} in the Trigger form, the Variable `rekfeedback_{name}` "
                                 f"or env `REKFEEDBACK_{name.upper()}`")
