// The Java client (kafka-clients 4.x) with group.protocol=consumer, for
// broker/tests/groups_consumer_protocol.rs: two members split 4 partitions, a third
// joins (the first two may only lose partitions), a commit, Admin.describeConsumerGroups
// (ConsumerGroupDescribe) and Admin.listGroups (the group type). Run as a single-file
// source program: java -cp 'KAFKA_LIBS/*' Kip848Check.java BOOTSTRAP TOPIC GROUP.
// Prints lines the test parses; exits non-zero on failure. Bounded: 40 s per wait.
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;

public class Kip848Check {
    static KafkaConsumer<byte[], byte[]> consumer(String bs, String group, String id) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bs);
        p.put("group.id", group);
        p.put("group.protocol", "consumer");
        p.put("client.id", id);
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        p.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        return new KafkaConsumer<>(p);
    }
    static Set<Integer> parts(KafkaConsumer<byte[], byte[]> c) {
        Set<Integer> s = new TreeSet<>();
        for (TopicPartition tp : c.assignment()) s.add(tp.partition());
        return s;
    }
    public static void main(String[] a) throws Exception {
        String bs = a[0], topic = a[1], group = a[2];
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bs))) {
            admin.createTopics(List.of(new NewTopic(topic, 4, (short) 1))).all().get();
        }
        List<KafkaConsumer<byte[], byte[]>> cs = new ArrayList<>();
        for (int i = 0; i < 2; i++) { var c = consumer(bs, group, "java-" + i); c.subscribe(List.of(topic)); cs.add(c); }
        long deadline = System.currentTimeMillis() + 40000;
        List<Set<Integer>> two = null;
        while (System.currentTimeMillis() < deadline) {
            for (var c : cs) c.poll(Duration.ofMillis(50));
            List<Set<Integer>> now = new ArrayList<>(); int n = 0; boolean allNonEmpty = true;
            for (var c : cs) { var s = parts(c); now.add(s); n += s.size(); allNonEmpty &= !s.isEmpty(); }
            if (n == 4 && allNonEmpty) { two = now; break; }
        }
        System.out.println("two: " + two);
        var c3 = consumer(bs, group, "java-2"); c3.subscribe(List.of(topic)); cs.add(c3);
        List<Set<Integer>> three = null;
        deadline = System.currentTimeMillis() + 40000;
        while (System.currentTimeMillis() < deadline) {
            for (var c : cs) c.poll(Duration.ofMillis(50));
            List<Set<Integer>> now = new ArrayList<>(); int n = 0; boolean allNonEmpty = true;
            for (var c : cs) { var s = parts(c); now.add(s); n += s.size(); allNonEmpty &= !s.isEmpty(); }
            if (n == 4 && allNonEmpty) { three = now; break; }
        }
        System.out.println("three: " + three);
        if (two == null || three == null) { System.out.println("FAIL: never split"); System.exit(1); }
        for (int i = 0; i < 2; i++) {
            if (!two.get(i).containsAll(three.get(i))) { System.out.println("FAIL: member " + i + " gained or swapped"); System.exit(1); }
        }
        cs.get(0).commitSync(Map.of(new TopicPartition(topic, cs.get(0).assignment().iterator().next().partition()), new OffsetAndMetadata(0)));
        System.out.println("commit ok");
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bs))) {
            var d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            System.out.println("describe: state=" + d.groupState() + " type=" + d.type() + " assignor=" + d.partitionAssignor() + " members=" + d.members().size() + " epoch=" + d.groupEpoch());
            var l = admin.listGroups().all().get();
            for (var g : l) if (g.groupId().equals(group)) System.out.println("listed: " + g);
        }
        for (var c : cs) c.close(Duration.ofSeconds(5));
        System.out.println("closed");
    }
}
