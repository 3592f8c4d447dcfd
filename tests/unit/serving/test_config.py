"""Serving configuration: validation of every setting and the round trip used by worker processes."""
from __future__ import annotations

import pytest

from pyflame_rt.errors import ValidationError
from pyflame_rt.serving import ModelConfig, ServerConfig, VersionPolicy, VersionPolicyKind


def test_guide_style_configuration_validates_and_round_trips():
    config = ServerConfig()
    config.http.host, config.http.port, config.http.num_workers = "0.0.0.0", 8080, 4
    config.enable_metrics = True
    model = ModelConfig()
    model.name, model.model_path, model.version = "resnet50", "/models/resnet50.pfm", "1"
    model.enable_batching, model.max_batch_size = True, 32
    model.version_policy = VersionPolicy(VersionPolicyKind.SPECIFIC, versions=["1"])
    config.models.append(model)
    assert ServerConfig.from_dict(config.validate().to_dict()) == config


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c.http, "num_workers", 0), "http.num_workers"),
    (lambda c: setattr(c.http, "port", -1), "http.port"),
    (lambda c: setattr(c.http, "ssl_certfile", "cert.pem"), "both"),
    (lambda c: setattr(c.security, "max_body_bytes", 0), "max_body_bytes"),
    (lambda c: setattr(c.security, "body_timeout_s", 0), "body_timeout_s"),
    (lambda c: setattr(c.security, "min_body_rate", 0), "min_body_rate"),
    (lambda c: setattr(c.security, "rate_limit_rps", -1), "rate_limit_rps"),
    (lambda c: c.models.append(ModelConfig(name="")), "model name"),
    (lambda c: c.models.append(ModelConfig(name="m", max_concurrency=0)), "max_concurrency"),
    (lambda c: c.models.append(ModelConfig(name="m", max_batch_size=0)), "max_batch_size"),
    (lambda c: c.models.append(ModelConfig(name="m", inputs={"x": [1, -2]})), "dims"),
])
def test_bad_settings_are_validation_errors(change, message):
    config = ServerConfig()
    change(config)
    with pytest.raises(ValidationError, match=message):
        config.validate()


@pytest.mark.parametrize("value, kind, selected", [
    (None, VersionPolicyKind.LATEST, ["3"]),
    ({"latest": 2}, VersionPolicyKind.LATEST, ["2", "3"]),
    ({"specific": ["1", 3]}, VersionPolicyKind.SPECIFIC, ["1", "3"]),
    ({"all": {}}, VersionPolicyKind.ALL, ["1", "2", "3"]),
])
def test_version_policy_parse_and_select(value, kind, selected):
    policy = VersionPolicy.parse(value)
    assert policy.kind is kind and policy.select(["1", "2", "3"]) == selected


@pytest.mark.parametrize("value", [{"latest": 0}, {"specific": []}, {"newest": 1}, [1], {"latest": 1, "all": {}}])
def test_bad_version_policies(value):
    with pytest.raises(ValidationError):
        VersionPolicy.parse(value)
