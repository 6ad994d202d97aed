"""--log-driver / --log-opt: validation with moby's wording and the monitor's options."""

from __future__ import annotations

import pytest

from dockyard.daemon.logconfig import log_options, validate_log_config
from dockyard.errors import InvalidParameter
from dockyard.util.humanize import parse_human_size


def test_sizes_are_decimal_like_go_units() -> None:
    assert [parse_human_size(s) for s in ("10m", "1.5k", "2GB", "100", "3kb")] == [10**7, 1500, 2 * 10**9, 100, 3000]
    with pytest.raises(ValueError):
        parse_human_size("lots")


def test_validation_and_defaults() -> None:
    assert validate_log_config(None) == {"Type": "json-file", "Config": {}}
    assert validate_log_config({"Type": "", "Config": {"max-size": "1m"}}) == {
        "Type": "json-file",
        "Config": {"max-size": "1m"},
    }
    for config, message in [
        ({"Type": "syslog"}, 'no log driver named "syslog" is registered'),
        ({"Type": "json-file", "Config": {"bogus": "1"}}, "unknown log opt 'bogus' for json-file log driver"),
        ({"Type": "none", "Config": {"max-size": "1m"}}, "unknown log opt 'max-size' for none log driver"),
        ({"Config": {"max-file": "0"}}, "max-file cannot be less than 1"),
        ({"Config": {"max-size": "0"}}, "max-size must be a positive number"),
        ({"Config": {"max-size": "big"}}, "invalid size"),
    ]:
        with pytest.raises(InvalidParameter, match=message):
            validate_log_config(config)


def test_monitor_options() -> None:
    assert log_options({"Type": "none"}, "/x/container.log") == {"log_path": None}
    options = log_options({"Type": "json-file", "Config": {"max-size": "2k", "max-file": "3"}}, "/x/container.log")
    assert options == {"log_path": "/x/container.log", "log_max_size": 2000, "log_max_files": 3}
    assert log_options(None, "/x/c.log") == {"log_path": "/x/c.log", "log_max_size": 0, "log_max_files": 1}
