// Java driver of the compatibility matrix: Apache Kafka's own clients (kafka-clients and
// kafka-streams 4.4). Usage: Driver BOOTSTRAP SCENARIO TAG; prints one JSON line
// {"client","version","scenario","result","detail"} (see compat/python/common.py).
// The producer keeps its defaults (idempotence on, acks=all); consumers use
// group.protocol=classic. Besides the shared scenarios: admin_more (the AdminClient calls
// an application's tooling makes), streams_wordcount (a Kafka Streams application) and
// transactions (KIP-98: commit, abort, read_committed, sendOffsetsToTransaction).
package compat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.internals.AppInfoParser;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

public final class Driver {
    static final int N = 1000;
    static final int GROUP_PER_PARTITION = 50;
    static final int RESUME_PER_PARTITION = 10;
    static final int LARGE = 1024 * 1024;
    static final long TS_BASE = 1_700_000_000_000L;

    static String bootstrap;
    static String tag;

    static final class Fail extends Exception {
        Fail(String msg) {
            super(msg);
        }
    }

    record Rec(String key, String value, List<String[]> headers) {
        String show() {
            return key + "=" + value + " " + headers.stream().map(h -> h[0] + ":" + h[1]).collect(Collectors.toList());
        }
    }

    static String[] names(String scenario) {
        String t = ("compat-" + tag + "-" + scenario).replace('_', '-');
        return new String[] {t, t + "-group"};
    }

    static List<Rec> keyed(int n, String prefix) {
        List<Rec> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new Rec(prefix + i, "value-" + i + "-" + "x".repeat(i % 17),
                    List.of(new String[] {"idx", String.valueOf(i)}, new String[] {"src", "compat"})));
        }
        return out;
    }

    static Properties producerProps(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 20000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 15000);
        p.putAll(extra);
        return p;
    }

    static void produce(String topic, List<Rec> recs, int partition, Map<String, Object> extra, long[] ts)
            throws Exception {
        try (KafkaProducer<String, byte[]> p = new KafkaProducer<>(producerProps(extra))) {
            List<java.util.concurrent.Future<?>> fs = new ArrayList<>();
            for (int i = 0; i < recs.size(); i++) {
                Rec r = recs.get(i);
                ProducerRecord<String, byte[]> pr = new ProducerRecord<>(topic, partition,
                        ts == null ? null : ts[i], r.key, r.value.getBytes(StandardCharsets.UTF_8));
                for (String[] h : r.headers) {
                    pr.headers().add(h[0], h[1].getBytes(StandardCharsets.UTF_8));
                }
                fs.add(p.send(pr));
            }
            p.flush();
            for (var f : fs) {
                f.get();
            }
        }
    }

    static Properties consumerProps(Map<String, Object> extra) {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.putAll(extra);
        return c;
    }

    static List<ConsumerRecord<String, byte[]>> consumeAssigned(String topic, int partition, long offset, int n,
            Map<String, Object> extra) {
        List<ConsumerRecord<String, byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(consumerProps(extra))) {
            TopicPartition tp = new TopicPartition(topic, partition);
            c.assign(List.of(tp));
            if (offset < 0) {
                c.seekToBeginning(List.of(tp));
            } else {
                c.seek(tp, offset);
            }
            long deadline = System.currentTimeMillis() + 20000;
            while (out.size() < n && System.currentTimeMillis() < deadline) {
                for (var r : c.poll(Duration.ofMillis(200))) {
                    out.add(r);
                }
            }
        }
        return out;
    }

    static Rec asRec(ConsumerRecord<String, byte[]> r) {
        List<String[]> hs = new ArrayList<>();
        for (Header h : r.headers()) {
            hs.add(new String[] {h.key(), new String(h.value(), StandardCharsets.UTF_8)});
        }
        return new Rec(r.key(), new String(r.value(), StandardCharsets.UTF_8), hs);
    }

    static void checkSame(List<Rec> want, List<ConsumerRecord<String, byte[]>> got) throws Fail {
        if (got.size() != want.size()) {
            throw new Fail("expected " + want.size() + " records, got " + got.size());
        }
        for (int i = 0; i < want.size(); i++) {
            Rec g = asRec(got.get(i));
            if (!g.show().equals(want.get(i).show())) {
                throw new Fail("first difference at #" + i + ": expected " + want.get(i).show() + ", got " + g.show());
            }
        }
    }

    static String roundtrip(String scenario, int n, Map<String, Object> prod, Map<String, Object> cons, String what)
            throws Exception {
        String topic = names(scenario)[0];
        List<Rec> recs = keyed(n, "k");
        produce(topic, recs, 0, prod, null);
        checkSame(recs, consumeAssigned(topic, 0, -1, n, cons));
        return what;
    }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        return Admin.create(p);
    }

    static boolean waitUntil(BooleanSupplier pred, long ms) throws InterruptedException {
        long end = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < end) {
            if (pred.getAsBoolean()) {
                return true;
            }
            Thread.sleep(100);
        }
        return pred.getAsBoolean();
    }

    static int partitionsOf(Admin a, String topic) {
        try {
            return a.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
        } catch (Exception e) {
            return -1;
        }
    }

    // ---- scenarios ----

    static String metadata() throws Exception {
        String topic = names("metadata")[0];
        produce(topic, keyed(1, "k"), 0, Map.of(), null);
        try (Admin a = admin()) {
            Set<String> topics = a.listTopics().names().get();
            if (!topics.contains(topic)) {
                throw new Fail("listTopics does not name " + topic);
            }
            int parts = partitionsOf(a, topic);
            if (parts != 1) {
                throw new Fail("describeTopics: " + parts + " partitions, expected 1");
            }
            DescribeClusterResult dc = a.describeCluster();
            Collection<Node> nodes = dc.nodes().get();
            Node controller = dc.controller().get();
            String id = dc.clusterId().get();
            if (nodes.isEmpty() || id == null || id.isEmpty()) {
                throw new Fail("describeCluster: nodes " + nodes + ", cluster id " + id);
            }
            return "listTopics, describeTopics (1 partition), describeCluster: " + nodes.size() + " node(s), controller "
                    + (controller == null ? "none" : controller.id()) + ", cluster id set";
        }
    }

    static final class Member implements Runnable {
        final String group;
        final String topic;
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicInteger count = new AtomicInteger();
        final AtomicBoolean holds = new AtomicBoolean();
        final List<String> seen = Collections.synchronizedList(new ArrayList<>());
        volatile Throwable error;

        Member(String group, String topic) {
            this.group = group;
            this.topic = topic;
        }

        public void run() {
            Map<String, Object> extra = Map.of(ConsumerConfig.GROUP_ID_CONFIG, group,
                    ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000, ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
            try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(consumerProps(extra))) {
                c.subscribe(List.of(topic));
                while (!stop.get()) {
                    ConsumerRecords<String, byte[]> rs = c.poll(Duration.ofMillis(100));
                    holds.set(!c.assignment().isEmpty());
                    for (var r : rs) {
                        seen.add(r.partition() + ":" + String.format("%02d", r.offset()));
                        count.incrementAndGet();
                    }
                    if (!rs.isEmpty()) {
                        c.commitSync();
                    }
                }
            } catch (Throwable t) {
                error = t;
            }
        }
    }

    static Map<Integer, Long> committed(Admin a, String group, String topic) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> m = a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        Map<Integer, Long> out = new TreeMap<>();
        for (var e : m.entrySet()) {
            if (e.getKey().topic().equals(topic) && e.getValue() != null) {
                out.put(e.getKey().partition(), e.getValue().offset());
            }
        }
        return out;
    }

    static String groupCommit() throws Exception {
        String topic = names("group")[0];
        String group = names("group")[1];
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
        }
        Member[] ms = {new Member(group, topic), new Member(group, topic)};
        Thread[] ts = {new Thread(ms[0]), new Thread(ms[1])};
        for (Thread t : ts) {
            t.start();
        }
        try {
            if (!waitUntil(() -> ms[0].holds.get() && ms[1].holds.get(), 30000)) {
                throw new Fail("both members never held partitions: " + ms[0].holds.get() + " " + ms[1].holds.get()
                        + " " + ms[0].error + " " + ms[1].error);
            }
            for (int p = 0; p < 2; p++) {
                produce(topic, keyed(GROUP_PER_PARTITION, "p" + p + "-"), p, Map.of(), null);
            }
            waitUntil(() -> ms[0].count.get() + ms[1].count.get() >= 2 * GROUP_PER_PARTITION, 30000);
        } finally {
            for (Member m : ms) {
                m.stop.set(true);
            }
            for (Thread t : ts) {
                t.join(20000);
            }
        }
        int total = ms[0].count.get() + ms[1].count.get();
        if (total != 2 * GROUP_PER_PARTITION) {
            throw new Fail("consumed " + total + " records, expected " + 2 * GROUP_PER_PARTITION);
        }
        try (Admin a = admin()) {
            Map<Integer, Long> c = committed(a, group, topic);
            if (!c.equals(Map.of(0, 50L, 1, 50L))) {
                throw new Fail("committed offsets " + c);
            }
            return "two classic-protocol members, " + ms[0].count.get() + "+" + ms[1].count.get()
                    + " records, commitSync, listConsumerGroupOffsets " + c;
        }
    }

    static String groupResume() throws Exception {
        String topic = names("group")[0];
        String group = names("group")[1];
        for (int p = 0; p < 2; p++) {
            produce(topic, keyed(RESUME_PER_PARTITION, "r" + p + "-"), p, Map.of(), null);
        }
        Member m = new Member(group, topic);
        Thread t = new Thread(m);
        t.start();
        waitUntil(() -> m.count.get() >= 2 * RESUME_PER_PARTITION, 30000);
        Thread.sleep(1000);
        m.stop.set(true);
        t.join(20000);
        List<String> got = new ArrayList<>(m.seen);
        Collections.sort(got);
        List<String> want = new ArrayList<>();
        for (int p = 0; p < 2; p++) {
            for (int o = 50; o < 60; o++) {
                want.add(p + ":" + o);
            }
        }
        if (!got.equals(want)) {
            throw new Fail("after restart consumed " + got + " (" + got.size() + "), expected offsets 50..59 of each partition"
                    + (m.error == null ? "" : "; " + m.error));
        }
        return "fresh member resumed at the committed offsets after a broker restart";
    }

    static String adminBasic() throws Exception {
        String topic = names("admin")[0];
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
            if (!waitUntil(() -> partitionsOf(a, topic) == 3, 10000)) {
                throw new Fail("created topic does not show 3 partitions");
            }
            a.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get();
            if (!waitUntil(() -> partitionsOf(a, topic) == 5, 10000)) {
                throw new Fail("createPartitions: topic does not show 5 partitions");
            }
            a.deleteTopics(List.of(topic)).all().get();
            if (!waitUntil(() -> {
                try {
                    return !a.listTopics().names().get().contains(topic);
                } catch (Exception e) {
                    return false;
                }
            }, 10000)) {
                throw new Fail("deleted topic still listed");
            }
        }
        return "createTopics (3) -> createPartitions (5) -> deleteTopics";
    }

    static String adminMore() throws Exception {
        String topic = names("admin_more")[0];
        String group = names("admin_more")[1];
        List<String> did = new ArrayList<>();
        try (Admin a = admin()) {
            DescribeClusterResult dc = a.describeCluster();
            did.add("describeCluster (" + dc.nodes().get().size() + " node(s))");
            a.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config cfg = a.describeConfigs(List.of(res)).all().get().get(res);
            ConfigEntry policy = cfg.get("cleanup.policy");
            if (policy == null || !policy.value().equals("delete")) {
                throw new Fail("describeConfigs: cleanup.policy " + policy);
            }
            did.add("describeConfigs (cleanup.policy=delete, " + cfg.entries().size() + " entries)");
            a.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"),
                    AlterConfigOp.OpType.SET)))).all().get();
            ConfigEntry ret = a.describeConfigs(List.of(res)).all().get().get(res).get("retention.ms");
            if (ret == null || !ret.value().equals("3600000") || ret.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG) {
                throw new Fail("incrementalAlterConfigs SET retention.ms=3600000, then describeConfigs: " + ret);
            }
            did.add("incrementalAlterConfigs SET retention.ms (read back, source DYNAMIC_TOPIC_CONFIG)");
            long[] ts = new long[10];
            for (int i = 0; i < 10; i++) {
                ts[i] = TS_BASE + i * 1000L;
            }
            produce(topic, keyed(10, "k"), 0, Map.of(), ts);
            TopicPartition tp = new TopicPartition(topic, 0);
            Map<String, Long> offs = new TreeMap<>();
            for (var spec : Map.of("earliest", OffsetSpec.earliest(), "latest", OffsetSpec.latest(), "max-timestamp",
                    OffsetSpec.maxTimestamp(), "for-time", OffsetSpec.forTimestamp(TS_BASE + 4500)).entrySet()) {
                ListOffsetsResult.ListOffsetsResultInfo info = a.listOffsets(Map.of(tp, spec.getValue())).partitionResult(tp).get();
                offs.put(spec.getKey(), info.offset());
            }
            Map<String, Long> want = Map.of("earliest", 0L, "latest", 10L, "max-timestamp", 9L, "for-time", 5L);
            if (!offs.equals(want)) {
                throw new Fail("listOffsets " + offs + ", expected " + new TreeMap<>(want));
            }
            did.add("listOffsets earliest/latest/max-timestamp/for-time " + offs);
            try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(consumerProps(Map.of(ConsumerConfig.GROUP_ID_CONFIG,
                    group)))) {
                c.subscribe(List.of(topic));
                int got = 0;
                long deadline = System.currentTimeMillis() + 20000;
                while (got < 10 && System.currentTimeMillis() < deadline) {
                    got += c.poll(Duration.ofMillis(200)).count();
                }
                c.commitSync();
                ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).all().get().get(group);
                if (d.members().size() != 1 || !"range".equals(d.partitionAssignor()) && !d.partitionAssignor().contains("sticky")) {
                    throw new Fail("describeConsumerGroups (one live member): " + d);
                }
                did.add("describeConsumerGroups (" + d.groupState() + ", " + d.members().size() + " member, assignor "
                        + d.partitionAssignor() + ")");
            }
            Map<Integer, Long> c = committed(a, group, topic);
            if (c.get(0) == null || c.get(0) != 10L) {
                throw new Fail("committed offsets " + c);
            }
            a.deleteConsumerGroups(List.of(group)).all().get();
            if (!committed(a, group, topic).isEmpty()) {
                throw new Fail("offsets still listed after deleteConsumerGroups");
            }
            did.add("deleteConsumerGroups (offsets gone)");
            a.deleteTopics(List.of(topic)).all().get();
        }
        return String.join("; ", did);
    }

    static String noAutocreate() throws Exception {
        String topic = names("no_autocreate")[0];
        try {
            produce(topic, keyed(1, "k"), 0, Map.of(ProducerConfig.MAX_BLOCK_MS_CONFIG, 4000), null);
            throw new Fail("produce to a missing topic succeeded with auto-create off");
        } catch (ExecutionException | org.apache.kafka.common.errors.TimeoutException e) {
            Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
            String msg = cause.getClass().getSimpleName() + ": " + cause.getMessage();
            try (Admin a = admin()) {
                if (a.listTopics().names().get().contains(topic)) {
                    throw new Fail("topic was created: " + msg);
                }
            }
            if (!(cause instanceof org.apache.kafka.common.errors.TimeoutException)
                    && !(cause instanceof org.apache.kafka.common.errors.UnknownTopicOrPartitionException)) {
                throw new Fail("unexpected error: " + msg);
            }
            return msg;
        }
    }

    static String largeRecord() throws Exception {
        String topic = names("large_record")[0];
        byte[] big = new byte[LARGE];
        new Random(7).nextBytes(big);
        try (KafkaProducer<String, byte[]> p = new KafkaProducer<>(producerProps(Map.of(ProducerConfig.MAX_REQUEST_SIZE_CONFIG,
                4 * LARGE)))) {
            p.send(new ProducerRecord<>(topic, 0, "big", big)).get();
        }
        var got = consumeAssigned(topic, 0, -1, 1, Map.of());
        if (got.size() != 1 || !Arrays.equals(got.get(0).value(), big)) {
            throw new Fail("1 MiB record not read back (" + got.size() + " records)");
        }
        return "1 MiB value (max.request.size raised to 4 MiB)";
    }

    static String offsetSeek() throws Exception {
        String topic = names("offset_seek")[0];
        List<Rec> recs = keyed(100, "k");
        produce(topic, recs, 0, Map.of(), null);
        var got = consumeAssigned(topic, 0, 42, 58, Map.of());
        checkSame(recs.subList(42, 100), got);
        return "seek to offset 42: offsets 42..99";
    }

    static String timestamp() throws Exception {
        String topic = names("timestamp")[0];
        List<Rec> recs = keyed(100, "k");
        long[] ts = new long[100];
        for (int i = 0; i < 100; i++) {
            ts[i] = TS_BASE + i * 1000L;
        }
        produce(topic, recs, 0, Map.of(), ts);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(consumerProps(Map.of()))) {
            Map<TopicPartition, OffsetAndTimestamp> m = c.offsetsForTimes(Map.of(tp, TS_BASE + 50500));
            OffsetAndTimestamp o = m.get(tp);
            if (o == null || o.offset() != 51 || o.timestamp() != TS_BASE + 51000) {
                throw new Fail("offsetsForTimes(" + (TS_BASE + 50500) + ") -> " + o + ", expected offset 51");
            }
        }
        var got = consumeAssigned(topic, 0, 51, 49, Map.of());
        checkSame(recs.subList(51, 100), got);
        for (int i = 0; i < got.size(); i++) {
            if (got.get(i).timestamp() != ts[51 + i]) {
                throw new Fail("record " + (51 + i) + " has timestamp " + got.get(i).timestamp());
            }
        }
        return "offsetsForTimes -> 51, consumed 51..99 with their timestamps";
    }

    /**
     * A Kafka Streams word count (at_least_once): groupBy makes a repartition topic, count a
     * changelog topic, both created by Streams. With purge, also that Streams purged the
     * committed records of the repartition topic (it does so with DeleteRecords every
     * repartition.purge.interval.ms).
     */
    static String streamsWordcount(String scenario, boolean purge) throws Exception {
        String in = names(scenario)[0] + "-in";
        String out = names(scenario)[0] + "-out";
        String app = names(scenario)[0] + "-app";
        String[] words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"};
        Random rnd = new Random(16);
        List<Rec> lines = new ArrayList<>();
        Map<String, Long> want = new TreeMap<>();
        for (int i = 0; i < 300; i++) {
            StringBuilder sb = new StringBuilder();
            for (int w = 0; w < 1 + rnd.nextInt(6); w++) {
                String word = words[rnd.nextInt(words.length)];
                sb.append(w == 0 ? "" : " ").append(word);
                want.merge(word, 1L, Long::sum);
            }
            lines.add(new Rec("line" + i, sb.toString(), List.of()));
        }
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(in, 3, (short) 1), new NewTopic(out, 3, (short) 1))).all().get();
        }
        for (int p = 0; p < 3; p++) {
            final int part = p;
            List<Rec> mine = new ArrayList<>();
            for (int i = 0; i < lines.size(); i++) {
                if (i % 3 == part) {
                    mine.add(lines.get(i));
                }
            }
            produce(in, mine, p, Map.of(), null);
        }
        Path state = Files.createTempDirectory("compat-streams-");
        Properties sp = new Properties();
        sp.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        sp.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        sp.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        sp.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());
        sp.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        sp.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        sp.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        sp.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        sp.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, purge ? 200 : 30000);
        StreamsBuilder b = new StreamsBuilder();
        b.stream(in, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(v -> Arrays.asList(v.split(" ")))
                .groupBy((k, w) -> w, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(out, Produced.with(Serdes.String(), Serdes.Long()));
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        Map<String, Long> got = new TreeMap<>();
        Set<String> internal;
        try (KafkaStreams streams = new KafkaStreams(b.build(), sp)) {
            streams.setUncaughtExceptionHandler(e -> {
                errors.add(e.toString());
                return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.start();
            Properties cp = consumerProps(Map.of(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
                    org.apache.kafka.common.serialization.LongDeserializer.class.getName()));
            try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
                List<TopicPartition> tps = List.of(new TopicPartition(out, 0), new TopicPartition(out, 1),
                        new TopicPartition(out, 2));
                c.assign(tps);
                c.seekToBeginning(tps);
                long deadline = System.currentTimeMillis() + 60000;
                while (!got.equals(want) && errors.isEmpty() && System.currentTimeMillis() < deadline) {
                    for (var r : c.poll(Duration.ofMillis(200))) {
                        got.put(r.key(), r.value());
                    }
                }
            }
            try (Admin a = admin()) {
                internal = a.listTopics().names().get().stream().filter(t -> t.startsWith(app)).collect(Collectors.toCollection(
                        java.util.TreeSet::new));
            }
            if (!errors.isEmpty()) {
                throw new Fail("streams thread died: " + errors + " (state " + streams.state() + ")");
            }
            if (!got.equals(want)) {
                throw new Fail("word counts " + got + ", expected " + want + " (state " + streams.state() + ")");
            }
            if (purge) {
                String rep = app + "-words-repartition";
                Map<Integer, Long> earliest = new TreeMap<>();
                try (Admin a = admin()) {
                    waitUntil(() -> {
                        try {
                            for (int p = 0; p < 3; p++) {
                                TopicPartition tp = new TopicPartition(rep, p);
                                earliest.put(p, a.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get()
                                        .offset());
                            }
                        } catch (Exception e) {
                            return false;
                        }
                        return earliest.values().stream().mapToLong(Long::longValue).sum() > 0;
                    }, 10000);
                }
                if (earliest.values().stream().mapToLong(Long::longValue).sum() == 0) {
                    throw new Fail("counts right, but the repartition topic was not purged: earliest offsets " + earliest
                            + " 10 s after the counts (Streams deletes committed repartition records with DeleteRecords "
                            + "every repartition.purge.interval.ms = 200)");
                }
                return "repartition topic purged by Streams after commit (DeleteRecords): earliest offsets " + earliest
                        + "; counts right";
            }
        } finally {
            deleteTree(state);
        }
        String expect1 = app + "-counts-changelog";
        String expect2 = app + "-words-repartition";
        if (!internal.contains(expect1) || !internal.contains(expect2)) {
            throw new Fail("internal topics " + internal + ", expected " + expect1 + " and " + expect2);
        }
        return "at_least_once word count of 300 lines over 3 partitions: " + want.size() + " words, counts "
                + want + " (internal topics " + internal.stream().map(t -> t.substring(app.length() + 1))
                .collect(Collectors.toList()) + ")";
    }

    static void deleteTree(Path p) {
        try (var s = Files.walk(p)) {
            s.sorted(Collections.reverseOrder()).forEach(x -> x.toFile().delete());
        } catch (Exception ignored) {
            // a temp dir left behind is not a failed cell
        }
    }

    static Map<String, Object> conf(Object... kv) {
        Map<String, Object> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    /** Every value of partition 0 of {@code topic} up to its end as {@code isolation} sees it (the last stable
     * offset for read_committed), read with assign + seekToBeginning. */
    static List<String> readToEnd(String topic, String isolation) throws Fail {
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(consumerProps(conf(
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation)))) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            long deadline = System.currentTimeMillis() + 20000;
            while (c.position(tp) < end) {
                if (System.currentTimeMillis() > deadline) {
                    throw new Fail(isolation + ": position " + c.position(tp) + " never reached the end " + end
                            + " after " + out);
                }
                for (var r : c.poll(Duration.ofMillis(200))) {
                    out.add(new String(r.value(), StandardCharsets.UTF_8));
                }
            }
        }
        return out;
    }

    static long endOffset(String topic, String isolation) {
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(consumerProps(conf(
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation)))) {
            TopicPartition tp = new TopicPartition(topic, 0);
            return c.endOffsets(List.of(tp)).get(tp);
        }
    }

    static List<String> vals(String prefix, int n) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(prefix + i);
        }
        return out;
    }

    /** KIP-98: commit, abort (an open transaction holds back read_committed), and a consume-transform-produce step
     * whose consumed offsets commit with the transaction (sendOffsetsToTransaction with the group's metadata). */
    static String transactions() throws Exception {
        String out = names("transactions")[0];
        String in = out + "-in";
        String group = names("transactions")[1];
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(out, 1, (short) 1), new NewTopic(in, 1, (short) 1))).all().get();
        }
        produce(in, keyed(6, "in"), 0, Map.of(), null);
        List<String> committed = vals("c-", 10);
        List<String> aborted = vals("a-", 5);
        List<String> transformed = new ArrayList<>();
        long heldBack;
        long endWhileOpen;
        try (KafkaProducer<String, byte[]> p = new KafkaProducer<>(producerProps(conf(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, "compat-" + tag + "-txn",
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60000)))) {
            p.initTransactions();
            p.beginTransaction();
            for (String v : committed) {
                p.send(new ProducerRecord<>(out, 0, v, v.getBytes(StandardCharsets.UTF_8)));
            }
            p.commitTransaction();
            p.beginTransaction();
            for (String v : aborted) {
                p.send(new ProducerRecord<>(out, 0, v, v.getBytes(StandardCharsets.UTF_8)));
            }
            p.flush();
            // Open: read_committed ends at the last stable offset (the first offset of the open transaction).
            heldBack = endOffset(out, "read_committed");
            endWhileOpen = endOffset(out, "read_uncommitted");
            p.abortTransaction();
            try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(consumerProps(conf(ConsumerConfig.GROUP_ID_CONFIG,
                    group, ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed")))) {
                c.subscribe(List.of(in));
                List<ConsumerRecord<String, byte[]>> got = new ArrayList<>();
                long deadline = System.currentTimeMillis() + 30000;
                while (got.size() < 6 && System.currentTimeMillis() < deadline) {
                    for (var r : c.poll(Duration.ofMillis(200))) {
                        got.add(r);
                    }
                }
                if (got.size() != 6) {
                    throw new Fail("consume-transform-produce: consumed " + got.size() + " of 6 input records");
                }
                p.beginTransaction();
                for (var r : got) {
                    String v = "t-" + new String(r.value(), StandardCharsets.UTF_8);
                    transformed.add(v);
                    p.send(new ProducerRecord<>(out, 0, r.key(), v.getBytes(StandardCharsets.UTF_8)));
                }
                long next = got.get(got.size() - 1).offset() + 1;
                p.sendOffsetsToTransaction(Map.of(new TopicPartition(in, 0), new OffsetAndMetadata(next)),
                        c.groupMetadata());
                p.commitTransaction();
            }
        }
        if (heldBack != committed.size() + 1 || endWhileOpen != committed.size() + 1 + aborted.size()) {
            throw new Fail("while a transaction was open: read_committed end " + heldBack + " (expected "
                    + (committed.size() + 1) + "), read_uncommitted end " + endWhileOpen);
        }
        List<String> wantCommitted = new ArrayList<>(committed);
        wantCommitted.addAll(transformed);
        List<String> rc = readToEnd(out, "read_committed");
        if (!rc.equals(wantCommitted)) {
            throw new Fail("read_committed saw " + rc + ", expected " + wantCommitted);
        }
        List<String> wantAll = new ArrayList<>(committed);
        wantAll.addAll(aborted);
        wantAll.addAll(transformed);
        List<String> ru = readToEnd(out, "read_uncommitted");
        if (!ru.equals(wantAll)) {
            throw new Fail("read_uncommitted saw " + ru + ", expected " + wantAll);
        }
        try (Admin a = admin()) {
            Map<Integer, Long> offs = committed(a, group, in);
            if (!offs.equals(Map.of(0, 6L))) {
                throw new Fail("group offsets after the transaction " + offs + ", expected {0=6}");
            }
        }
        return "commit (10), abort (5; while open read_committed ends at " + heldBack + ", read_uncommitted at "
                + endWhileOpen + "), consume-transform-produce (6, sendOffsetsToTransaction with the group's metadata): "
                + "read_committed " + rc.size() + " records, read_uncommitted " + ru.size() + ", group offset 6";
    }

    static String run(String scenario) throws Exception {
        switch (scenario) {
            case "metadata":
                return metadata();
            case "produce_consume":
                return roundtrip(scenario, N, Map.of(), Map.of(), "1000 keyed records with headers read back exactly "
                        + "(producer defaults: idempotence on, acks=all)");
            case "compression_gzip":
            case "compression_snappy":
            case "compression_lz4":
            case "compression_zstd": {
                String codec = scenario.substring("compression_".length());
                return roundtrip(scenario, 300, conf(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec), Map.of(),
                        "300 records, compression.type=" + codec);
            }
            case "group_commit":
                return groupCommit();
            case "group_resume":
                return groupResume();
            case "admin":
                return adminBasic();
            case "admin_more":
                return adminMore();
            case "idempotent":
                return roundtrip(scenario, N, conf(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                        ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5), Map.of(),
                        "enable.idempotence=true, 5 in flight, 1000 records exactly once");
            case "crc":
                return roundtrip(scenario, 300, conf(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4"),
                        conf(ConsumerConfig.CHECK_CRCS_CONFIG, true), "check.crcs=true on lz4 batches");
            case "large_record":
                return largeRecord();
            case "offset_seek":
                return offsetSeek();
            case "timestamp":
                return timestamp();
            case "no_autocreate":
                return noAutocreate();
            case "streams_wordcount":
                return streamsWordcount(scenario, false);
            case "streams_purge":
                return streamsWordcount(scenario, true);
            case "transactions":
                return transactions();
            default:
                return null;
        }
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : (s == null ? "" : s).toCharArray()) {
            switch (ch) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (ch < 0x20) {
                        b.append(String.format("\\u%04x", (int) ch));
                    } else {
                        b.append(ch);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        bootstrap = args[0];
        String scenario = args[1];
        tag = args[2];
        String version = "kafka-clients " + AppInfoParser.getVersion() + " (kafka-streams " + AppInfoParser.getVersion()
                + ", Java " + System.getProperty("java.version") + ")";
        String result = "pass";
        String detail;
        try {
            detail = run(scenario);
            if (detail == null) {
                result = "unsupported";
                detail = "not implemented for this client";
            }
        } catch (Fail f) {
            result = "fail";
            detail = f.getMessage();
        } catch (Throwable t) {
            result = "fail";
            Throwable c = t instanceof ExecutionException && t.getCause() != null ? t.getCause() : t;
            detail = c.getClass().getSimpleName() + ": " + c.getMessage();
        }
        System.out.println("{\"client\": \"java\", \"version\": " + json(version) + ", \"scenario\": " + json(scenario)
                + ", \"result\": \"" + result + "\", \"detail\": " + json(detail) + "}");
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }
}
