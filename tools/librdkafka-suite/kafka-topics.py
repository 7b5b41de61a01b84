#!/usr/bin/env python3
"""Stand-in for Kafka's bin/kafka-topics.sh, for the librdkafka tests that shell out to it
(0077, 0052, 0045, 0113): --create/--alter/--delete/--list/--describe with
--bootstrap-server, through confluent-kafka's AdminClient (CreateTopics, CreatePartitions,
DeleteTopics, Metadata on the wire, as TopicCommand sends them).

Unlike Kafka 4's TopicCommand it does not validate topic configs itself (TopicCommand
refuses segment.bytes < 1 MiB before asking the broker): the broker under test decides.
"""

import argparse
import sys

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic


def main():
    ap = argparse.ArgumentParser(prog="kafka-topics.sh")
    ap.add_argument("--bootstrap-server", required=True)
    action = ap.add_mutually_exclusive_group(required=True)
    for a in ("create", "alter", "delete", "list", "describe"):
        action.add_argument("--" + a, action="store_true")
    ap.add_argument("--topic")
    ap.add_argument("--partitions", type=int)
    ap.add_argument("--replication-factor", type=int, default=-1)
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap_server})
    timeout_s = 30

    def need_topic():
        if not args.topic:
            ap.error("--topic is required")
        return args.topic

    try:
        if args.create:
            configs = {}
            for kv in args.config:
                if "=" not in kv:
                    ap.error(f"--config takes KEY=VALUE, not {kv!r}")
                k, v = kv.split("=", 1)
                configs[k] = v
            nt = NewTopic(need_topic(), num_partitions=args.partitions or -1,
                          replication_factor=args.replication_factor, config=configs)
            for fut in admin.create_topics([nt], operation_timeout=timeout_s).values():
                fut.result(timeout_s)
            print(f"Created topic {args.topic}.")
        elif args.alter:
            if args.partitions is None:
                ap.error("--alter needs --partitions")
            futs = admin.create_partitions([NewPartitions(need_topic(), args.partitions)],
                                           operation_timeout=timeout_s)
            for fut in futs.values():
                fut.result(timeout_s)
        elif args.delete:
            for fut in admin.delete_topics([need_topic()], operation_timeout=timeout_s).values():
                fut.result(timeout_s)
        else:
            md = admin.list_topics(topic=args.topic, timeout=timeout_s)
            for name, t in sorted(md.topics.items()):
                if args.list:
                    print(name)
                else:
                    print(f"Topic: {name}\tPartitionCount: {len(t.partitions)}"
                          + (f"\tError: {t.error}" if t.error else ""))
    except Exception as e:  # noqa: BLE001 - a tool: any failure is its message and exit 1
        print(f"Error while executing topic command : {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
