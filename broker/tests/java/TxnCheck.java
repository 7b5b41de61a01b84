// The Java client (kafka-clients 4.x) and transactions (KIP-98), for
// broker/tests/transactions.rs. Run as a single-file source program:
//   java -cp 'KAFKA_LIBS/*' TxnCheck.java MODE BOOTSTRAP ARGS...
// Prints JSON lines the test parses; exits non-zero on failure. Bounded: every wait
// has a deadline.
//
// Modes:
//   zombie BOOTSTRAP TOPIC TXID: a producer opens a transaction; a second one with the
//     same transactional.id initialises; the first one's commit must throw (its class
//     is reported); the second commits fresh-0, fresh-1.
//   timeout BOOTSTRAP TOPIC TXID: transaction.timeout.ms=2000, 3 records, then silence
//     until the partition's end passes them (the broker's abort marker); the commit must
//     throw (reported with the seconds the broker took).
//   worker BOOTSTRAP IN OUT GROUP TXID BATCH HANG_AFTER: consume-transform-produce like
//     broker/tests/transactions_confluent.py's worker: read_committed, (key, "out-" +
//     value) to the same partition of OUT, sendOffsetsToTransaction with the group's
//     metadata, {"committed": n} per commit; with HANG_AFTER >= 0 it opens one more
//     transaction after that many commits, prints {"open": k} and waits to be killed;
//     otherwise {"done": n} once the group's committed offsets reach IN's end.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;

public class TxnCheck {
    static final long DEADLINE_MS = 90_000;

    static KafkaProducer<byte[], byte[]> producer(String bs, String txid, int timeoutMs) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bs);
        p.put("transactional.id", txid);
        p.put("transaction.timeout.ms", String.valueOf(timeoutMs));
        p.put("max.block.ms", "30000");
        p.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        p.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        producer.initTransactions();
        return producer;
    }

    static KafkaConsumer<byte[], byte[]> consumer(String bs, Map<String, String> extra) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bs);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("group.protocol", "classic");
        p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static void send(KafkaProducer<byte[], byte[]> p, String topic, String prefix, int n) throws Exception {
        for (int i = 0; i < n; i++) {
            p.send(new ProducerRecord<>(topic, 0, null, b(prefix + "-" + i))).get();
        }
    }

    static void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    static long highWatermark(String bs, String topic) {
        try (var c = consumer(bs, Map.of())) {
            TopicPartition tp = new TopicPartition(topic, 0);
            return c.endOffsets(List.of(tp)).get(tp);
        }
    }

    static void zombie(String bs, String topic, String txid) throws Exception {
        var old = producer(bs, txid, 60000);
        old.beginTransaction();
        send(old, topic, "zombie", 3);
        var fresh = producer(bs, txid, 60000);
        String error = null;
        try {
            old.commitTransaction();
        } catch (Exception e) {
            error = e.getClass().getSimpleName();
        }
        if (error == null) {
            throw new IllegalStateException("the zombie's commit succeeded");
        }
        old.close(Duration.ZERO);
        fresh.beginTransaction();
        send(fresh, topic, "fresh", 2);
        fresh.commitTransaction();
        fresh.close();
        emit("{\"zombie_error\": \"" + error + "\"}");
    }

    static void timeout(String bs, String topic, String txid) throws Exception {
        var p = producer(bs, txid, 2000);
        long started = System.currentTimeMillis();
        p.beginTransaction();
        send(p, topic, "late", 3);
        while (highWatermark(bs, topic) < 4) {
            if (System.currentTimeMillis() - started > DEADLINE_MS) {
                throw new IllegalStateException("the broker never aborted the timed-out transaction");
            }
            Thread.sleep(200);
        }
        double after = (System.currentTimeMillis() - started) / 1000.0;
        String error = null;
        try {
            p.commitTransaction();
        } catch (Exception e) {
            error = e.getClass().getSimpleName();
        }
        if (error == null) {
            throw new IllegalStateException("the commit of a timed-out transaction succeeded");
        }
        p.close(Duration.ZERO);
        emit("{\"commit_error\": \"" + error + "\", \"aborted_after_s\": " + after + "}");
    }

    static void worker(String bs, String in, String out, String group, String txid, int batch, int hangAfter)
            throws Exception {
        // The producer first: initTransactions fences a predecessor and aborts its open
        // transaction (with its pending offsets) before this consumer reads the offsets.
        var producer = producer(bs, txid, 60000);
        var consumer = consumer(bs, Map.of("group.id", group, "isolation.level", "read_committed",
                "session.timeout.ms", "6000", "heartbeat.interval.ms", "500",
                "max.poll.records", String.valueOf(batch)));
        consumer.subscribe(List.of(in));
        List<TopicPartition> parts = new ArrayList<>();
        for (PartitionInfo pi : consumer.partitionsFor(in)) {
            parts.add(new TopicPartition(in, pi.partition()));
        }
        Map<TopicPartition, Long> ends;
        try (var plain = consumer(bs, Map.of())) {
            ends = plain.endOffsets(parts);
        }
        int commits = 0;
        long deadline = System.currentTimeMillis() + 2 * DEADLINE_MS;
        while (System.currentTimeMillis() < deadline) {
            ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
            if (records.isEmpty()) {
                if (consumer.assignment().size() == parts.size()) {
                    Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(new HashSet<>(parts));
                    boolean done = true;
                    for (TopicPartition tp : parts) {
                        OffsetAndMetadata o = committed.get(tp);
                        done &= o != null && o.offset() == ends.get(tp);
                    }
                    if (done) {
                        consumer.close();
                        producer.close();
                        emit("{\"done\": " + commits + "}");
                        return;
                    }
                }
                continue;
            }
            Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
            producer.beginTransaction();
            for (ConsumerRecord<byte[], byte[]> r : records) {
                byte[] value = b("out-" + new String(r.value(), StandardCharsets.UTF_8));
                producer.send(new ProducerRecord<>(out, r.partition(), r.key(), value));
                next.put(new TopicPartition(in, r.partition()), new OffsetAndMetadata(r.offset() + 1));
            }
            producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
            if (hangAfter >= 0 && commits >= hangAfter) {
                producer.flush();
                emit("{\"open\": " + records.count() + "}");
                Thread.sleep(2 * DEADLINE_MS);
                throw new IllegalStateException("the open worker was never killed");
            }
            producer.commitTransaction();
            commits++;
            emit("{\"committed\": " + commits + ", \"records\": " + records.count() + "}");
        }
        throw new IllegalStateException("worker: not done in time after " + commits + " commits");
    }

    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "zombie" -> zombie(a[1], a[2], a[3]);
            case "timeout" -> timeout(a[1], a[2], a[3]);
            case "worker" -> worker(a[1], a[2], a[3], a[4], a[5], Integer.parseInt(a[6]), Integer.parseInt(a[7]));
            default -> throw new IllegalArgumentException("unknown mode " + a[0]);
        }
        // The client's non-daemon threads are closed above; halt in case one lingers.
        Runtime.getRuntime().halt(0);
    }
}
