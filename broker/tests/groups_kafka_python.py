"""kafka-python consumer group member for broker/tests/groups.rs.

Usage: groups_kafka_python.py BOOTSTRAP TOPIC GROUP EXPECTED_RECORDS

Subscribes with a group, consumes EXPECTED_RECORDS records (or gives up after 30 s),
commits synchronously, reads the committed offsets back and prints one JSON object:
{"records": [[partition, offset], ...], "committed": {"partition": offset, ...}}.
"""
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition

DEADLINE_S = 30


def main():
    bootstrap, topic, group, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="kafka-python-groups-test",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        request_timeout_ms=15000,
    )
    records = []
    deadline = time.time() + DEADLINE_S
    while len(records) < expected and time.time() < deadline:
        for _tp, messages in consumer.poll(timeout_ms=200).items():
            records.extend([m.partition, m.offset] for m in messages)
    consumer.commit()
    partitions = consumer.partitions_for_topic(topic) or set()
    committed = {str(p): consumer.committed(TopicPartition(topic, p)) for p in sorted(partitions)}
    consumer.close()
    print(json.dumps({"records": records, "committed": committed}))


if __name__ == "__main__":
    main()
