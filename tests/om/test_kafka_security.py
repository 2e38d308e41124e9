"""Kafka TLS/SASL settings reach librdkafka as the clients take them.

No broker here offers SASL (Tansu 0.6 answers every mechanism with "no shared mechanism",
docs/operations.md), so these tests stop at the client: the settings become the librdkafka
configuration of the reader and the publisher, which librdkafka accepts (it checks names,
values and the CA file when a client is created) and which names the password only there."""

from __future__ import annotations

import certifi
import pytest

from ysh.om.stream import kafka_security
from ysh.settings import Settings


def _settings(**kwargs) -> Settings:
    return Settings(postgres_dsn="postgresql://ysh@127.0.0.1:1/ysh", **kwargs)


def test_sasl_ssl_settings_become_a_configuration_librdkafka_accepts():
    from confluent_kafka import Consumer, Producer

    settings = _settings(om_kafka_security_protocol="SASL_SSL", om_kafka_sasl_mechanism="SCRAM-SHA-512",
                         om_kafka_sasl_username="ysh-om", om_kafka_sasl_password="a-kafka-secret-for-the-test",
                         om_kafka_ssl_ca=certifi.where())
    config = kafka_security(settings)
    assert config == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                      "sasl.username": "ysh-om", "sasl.password": "a-kafka-secret-for-the-test",
                      "ssl.ca.location": certifi.where()}
    # the clients are created (librdkafka validates every property and loads the CA) and
    # never connect: the bootstrap address is a closed loopback port
    Producer({"bootstrap.servers": "127.0.0.1:1", **config}).flush(0)
    Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "ysh-test", **config}).close()
    assert "a-kafka-secret-for-the-test" not in repr(settings) and "a-kafka-secret-for-the-test" not in str(settings)


def test_plaintext_adds_nothing_and_tls_alone_adds_the_ca():
    assert kafka_security(_settings()) == {}
    assert kafka_security(_settings(om_kafka_security_protocol="SSL", om_kafka_ssl_ca=certifi.where())) == {
        "security.protocol": "SSL", "ssl.ca.location": certifi.where()}


def test_sasl_without_a_mechanism_is_a_clear_error():
    with pytest.raises(ValueError, match="needs YSH_OM_KAFKA_SASL_MECHANISM"):
        kafka_security(_settings(om_kafka_security_protocol="SASL_PLAINTEXT", om_kafka_sasl_username="u",
                                 om_kafka_sasl_password="p"))


def test_a_ca_file_that_is_not_there_is_refused_when_the_client_is_created(tmp_path):
    from confluent_kafka import KafkaException, Producer

    config = kafka_security(_settings(om_kafka_security_protocol="SSL", om_kafka_ssl_ca=tmp_path / "missing.pem"))
    with pytest.raises(KafkaException, match="ssl.ca.location failed"):
        Producer({"bootstrap.servers": "127.0.0.1:1", **config})
