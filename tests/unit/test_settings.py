"""Settings: the seed's environment names, CLI flags over them, one clear line when bad."""

from pathlib import Path
from typing import get_args

import pytest
from cqkd.cli import main
from cqkd.dht.bootstrap import Strategy
from cqkd.dht.config import DhtConfig
from cqkd.settings import (
    AllocationMode,
    LogLevel,
    Settings,
    SettingsError,
    StrategyName,
    load_settings,
)


def dht_config(settings: Settings) -> DhtConfig:
    return DhtConfig(**settings.dht_options())


def test_defaults() -> None:
    s = load_settings()
    dht = dht_config(s)
    assert (s.dht_port, dht.port, dht.rpc_timeout, dht.adaptive) == (5678, 5678, 2.0, True)
    assert s.bootstrap_nodes == [] and dht.alpha is None and dht.k is None
    assert dht.bootstrap_strategy is Strategy.ROUND_ROBIN
    assert dht.bootstrap_max_connections == 50
    assert (dht.max_peers_per_host, dht.max_peers_per_subnet) == (256, 1024)
    assert (dht.host, dht.network_size, dht.node_id) == ("0.0.0.0", 15, None)
    assert s.effective_http_port == 5678


def test_strategy_names_are_the_dht_strategies() -> None:
    assert set(get_args(StrategyName)) == {strategy.value for strategy in Strategy}


def test_every_dht_variable_reaches_the_dht_config(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "DHT_HOST": "127.0.0.2",
        "DHT_PORT": "7003",
        "NODE_ID": "ab" * 20,
        "WORKER_COUNT": "100",
        "ENABLE_ADAPTIVE_KADEMLIA": "false",
        "ALPHA": "5",
        "K": "33",
        "QUERY_TIMEOUT": "2.5",
        "RPC_TIMEOUT": "0.5",
        "DEAD_PEER_TTL": "3",
        "BOOTSTRAP_SELECTION_STRATEGY": "priority",
        "BOOTSTRAP_MAX_CONNECTIONS_PER_NODE": "7",
        "DHT_MAX_PEERS_PER_HOST": "4",
        "DHT_MAX_PEERS_PER_SUBNET": "9",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert dht_config(load_settings()) == DhtConfig(
        host="127.0.0.2",
        port=7003,
        node_id=bytes.fromhex("ab" * 20),
        network_size=100,
        adaptive=False,
        alpha=5,
        k=33,
        query_timeout=2.5,
        rpc_timeout=0.5,
        dead_peer_ttl=3.0,
        bootstrap_strategy=Strategy.PRIORITY,
        bootstrap_max_connections=7,
        max_peers_per_host=4,
        max_peers_per_subnet=9,
    )


def test_seed_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "DHT_PORT": "7003",
        "BOOTSTRAP_NODES": "bootstrap-primary:5678, 10.0.0.2:5679",
        "NODE_ID": "ab" * 20,
        "ALPHA": "5",
        "K": "33",
        "QUERY_TIMEOUT": "2.5",
        "RPC_TIMEOUT": "0.5",
        "ENABLE_ADAPTIVE_KADEMLIA": "false",
        "LOG_LEVEL": "debug",
        "BOOTSTRAP_SELECTION_STRATEGY": "least_loaded",
        "BOOTSTRAP_MAX_CONNECTIONS_PER_NODE": "7",
        "WORKER_COUNT": "100",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.dht_port == 7003
    assert s.bootstrap_nodes == [("bootstrap-primary", 5678), ("10.0.0.2", 5679)]
    assert s.node_id_bytes == bytes.fromhex("ab" * 20)
    assert (s.alpha, s.k, s.query_timeout, s.rpc_timeout) == (5, 33, 2.5, 0.5)
    assert s.enable_adaptive_kademlia is False
    assert s.log_level.value == "DEBUG"
    assert dht_config(s).bootstrap_strategy is Strategy.LEAST_LOADED
    assert (s.bootstrap_max_connections_per_node, s.worker_count) == (7, 100)


def test_explicit_values_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "33")
    assert load_settings(k="12").k == 12


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("K", "abc", "an integer 2..200"),
        ("K", "1", "an integer 2..200"),
        ("DHT_PORT", "70000", "a port 0..65535"),
        ("BOOTSTRAP_NODES", "no-port", "comma-separated host:port list"),
        ("BOOTSTRAP_NODES", "h:0", "comma-separated host:port list"),
        ("NODE_ID", "xyz", "40 hex digits"),
        ("ENABLE_ADAPTIVE_KADEMLIA", "maybe", "true or false"),
        (
            "BOOTSTRAP_SELECTION_STRATEGY",
            "fastest",
            "round_robin, least_loaded, priority or random",
        ),
        ("LOG_LEVEL", "loud", "DEBUG, INFO, WARNING or ERROR"),
        ("RPC_TIMEOUT", "0", "seconds, 0 < t <= 60"),
        ("QBER_THRESHOLD", "0.5", "abort once the QBER's lower confidence bound is above it, "
         "0 < q < 0.5"),
        ("CHANNEL_ERROR", "nan", "bit flip probability at this worker's QPM, 0..0.5"),
        ("MAX_KEY_BITS", "100", "the longest key one may ask for, bits, a multiple of 8, "
         "64..131072"),
        ("ALLOCATION_MODE", "POOLED", "pooled or dedicated"),
        ("TRUSTED_OWNERS", "ab" * 31, "comma-separated public keys (64 hex digits) of Alice "
         "and Bob"),
        ("KEY_STORE_MAX_KEYS", "2.5", "an integer 1..10000000"),
        ("ALICE_KME_ID", "", "Alice's KME_ID, 1..128 characters"),
    ],
)
def test_bad_value_names_the_variable_and_accepted_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, accepted: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting {name}=") and f"accepted: {accepted}" in message


def test_cli_exits_2_with_one_line_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALPHA", "zero")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ALPHA" in err and "an integer 1..64" in err


def test_cli_flag_is_validated_like_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bootstrap", "--bootstrap-selection-strategy", "nope"]) == 2
    assert "BOOTSTRAP_SELECTION_STRATEGY" in capsys.readouterr().err


def test_worker_without_bootstrap_nodes_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker", "--dht-port", "0"]) == 2
    assert "BOOTSTRAP_NODES" in capsys.readouterr().err


def test_a_refused_secret_is_not_repeated_in_the_error() -> None:
    # The one-line settings error goes to the log: it names the variable, not the value.
    secret = ["hunter2-hunter2-hunter2"]
    with pytest.raises(SettingsError) as refused:
        load_settings(api_token=secret)
    assert "API_TOKEN" in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("YES", True), ("1", True), ("on", True), ("false", False), ("0", False),
     ("n", False), ("Off", False)],
)
def test_booleans_read_as_pydantic_read_them(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    monkeypatch.setenv("ENABLE_ADAPTIVE_KADEMLIA", text)
    assert load_settings().enable_adaptive_kademlia is expected


def test_values_take_their_field_types() -> None:
    s = load_settings(
        qber_threshold="0.05", max_key_bits="4096.0", api_token_file="/run/token",
        bob_address="10.0.0.2:6001", allocation_mode="dedicated", log_level="warning",
        trusted_owners="ab" * 32 + ", " + "cd" * 32,
    )
    assert (s.qber_threshold, s.max_key_bits, s.api_token_file) == (0.05, 4096, Path("/run/token"))
    assert (s.bob_address, s.allocation_mode, s.log_level) == (
        ("10.0.0.2", 6001), AllocationMode.DEDICATED, LogLevel.WARNING)
    assert s.trusted_owners == ["ab" * 32, "cd" * 32]


def test_the_token_never_shows_in_a_repr() -> None:
    s = load_settings(api_token="hunter2-hunter2-hunter2")
    assert s.api_token is not None and s.api_token.get_secret_value() == "hunter2-hunter2-hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.api_token)


def test_given_fields_are_known_and_copies_add_theirs() -> None:
    s = load_settings(dht_port="7000", http_port=None)
    assert s.model_fields_set == {"dht_port", "http_port"}
    copy = s.model_copy(update={"etsi_port": 9000})
    assert copy.model_fields_set == {"dht_port", "http_port", "etsi_port"}
    assert (copy.dht_port, copy.etsi_port, s.etsi_port) == (7000, 9000, None)
