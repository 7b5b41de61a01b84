// Current IBM/sarama (v1.61, from the Go module proxy) driver of the compatibility
// matrix, adapted from compat/go/sarama.go (Debian's sarama 1.22): the same scenarios,
// with protocol version 3.6 and without 1.22's work-arounds. Usage: sarama-ibm
// BOOTSTRAP SCENARIO TAG; prints one JSON line {"client","version","scenario","result",
// "detail"} (see compat/python/common.py).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// sarama has no version constant: the module version from the build info.
func saramaVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/IBM/sarama" {
				return d.Version + " (Go module, protocol version " + protocolVersion.String() + ")"
			}
		}
	}
	return "unknown"
}

var protocolVersion = sarama.V3_6_0_0

const (
	n                 = 1000
	groupPerPartition = 50
	resumePerPart     = 10
	tsBase            = int64(1700000000000)
	large             = 1024 * 1024
)

type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

type unsupported struct{ msg string }

func (u unsupported) Error() string { return u.msg }

func failf(format string, a ...interface{}) error { return failure{fmt.Sprintf(format, a...)} }

var bootstrap, tag string

func names(s string) (string, string) {
	t := "compat-" + tag + "-" + strings.ReplaceAll(s, "_", "-")
	return t, t + "-group"
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = protocolVersion
	c.ClientID = "compat-sarama-ibm"
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.MaxMessageBytes = 4 * large
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Consumer.Return.Errors = true
	return c
}

type rec struct {
	key, value string
	headers    map[string]string
}

func keyed(count int, prefix string) []rec {
	out := make([]rec, count)
	for i := range out {
		out[i] = rec{fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%17)),
			map[string]string{"idx": fmt.Sprint(i), "src": "compat"}}
	}
	return out
}

func produce(topic string, recs []rec, partition int32, tweak func(*sarama.Config), ts func(int) time.Time) error {
	c := config()
	if tweak != nil {
		tweak(c)
	}
	p, err := sarama.NewSyncProducer([]string{bootstrap}, c)
	if err != nil {
		return err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		m := &sarama.ProducerMessage{Topic: topic, Partition: partition, Key: sarama.StringEncoder(r.key),
			Value: sarama.StringEncoder(r.value)}
		keys := make([]string, 0, len(r.headers))
		for k := range r.headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(r.headers[k])})
		}
		if ts != nil {
			m.Timestamp = ts(i)
		}
		msgs[i] = m
	}
	for i := 0; i < len(msgs); i += 500 {
		end := i + 500
		if end > len(msgs) {
			end = len(msgs)
		}
		if err := p.SendMessages(msgs[i:end]); err != nil {
			return err
		}
	}
	return nil
}

func consume(topic string, partition int32, offset int64, count int, tweak func(*sarama.Config)) ([]*sarama.ConsumerMessage, error) {
	c := config()
	if tweak != nil {
		tweak(c)
	}
	consumer, err := sarama.NewConsumer([]string{bootstrap}, c)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	deadline := time.After(20 * time.Second)
	for len(out) < count {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
		case e := <-pc.Errors():
			return out, e
		case <-deadline:
			return out, nil
		}
	}
	return out, nil
}

func checkSame(want []rec, got []*sarama.ConsumerMessage) error {
	if len(got) != len(want) {
		return failf("expected %d records, got %d", len(want), len(got))
	}
	for i, m := range got {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[string(x.Key)] = string(x.Value)
		}
		g := rec{string(m.Key), string(m.Value), h}
		if g.key != want[i].key || g.value != want[i].value || fmt.Sprint(g.headers) != fmt.Sprint(want[i].headers) {
			return failf("first difference at #%d: expected %v, got %v", i, want[i], g)
		}
	}
	return nil
}

func roundtrip(topic string, recs []rec, tweak func(*sarama.Config)) error {
	if err := produce(topic, recs, 0, tweak, nil); err != nil {
		return err
	}
	got, err := consume(topic, 0, sarama.OffsetOldest, len(recs), tweak)
	if err != nil {
		return err
	}
	return checkSame(recs, got)
}

func admin() (sarama.ClusterAdmin, error) {
	return sarama.NewClusterAdmin([]string{bootstrap}, config())
}

func partitionsOf(topic string) (int, error) {
	client, err := sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	ps, err := client.Partitions(topic)
	return len(ps), err
}

// listed: whether Metadata for all topics names topic.
func listed(topic string) bool {
	client, err := sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		return true
	}
	defer client.Close()
	ts, err := client.Topics()
	if err != nil {
		return true
	}
	for _, t := range ts {
		if t == topic {
			return true
		}
	}
	return false
}

func waitUntil(pred func() bool, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if pred() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return pred()
}

// group member: counts what it got, marks every message (committed on interval and close).
type member struct {
	mu       sync.Mutex
	got      []*sarama.ConsumerMessage
	assigned bool
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ps := range s.Claims() {
		if len(ps) > 0 {
			m.assigned = true
		}
	}
	return nil
}
func (m *member) Cleanup(sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.assigned = false
	m.mu.Unlock()
	return nil
}
func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.mu.Lock()
		m.got = append(m.got, msg)
		m.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}
func (m *member) count() int  { m.mu.Lock(); defer m.mu.Unlock(); return len(m.got) }
func (m *member) holds() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.assigned }

func groupConfig() *sarama.Config {
	c := config()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	return c
}

func runMember(ctx context.Context, group, topic string, m *member) (sarama.ConsumerGroup, error) {
	g, err := sarama.NewConsumerGroup([]string{bootstrap}, group, groupConfig())
	if err != nil {
		return nil, err
	}
	go func() {
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, m); err != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	go func() {
		for range g.Errors() {
		}
	}()
	return g, nil
}

var scenarios = map[string]func() (string, error){
	"metadata": func() (string, error) {
		topic, _ := names("metadata")
		if err := produce(topic, keyed(1, "k"), 0, nil, nil); err != nil {
			return "", err
		}
		a, err := admin()
		if err != nil {
			return "", err
		}
		defer a.Close()
		topics, err := a.ListTopics()
		if err != nil {
			return "", fmt.Errorf("ClusterAdmin.ListTopics: %w", err)
		}
		if d, ok := topics[topic]; !ok || d.NumPartitions != 1 {
			return "", failf("%s not listed with 1 partition: %v", topic, d)
		}
		brokers, controller, err := a.DescribeCluster()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("ListTopics, DescribeCluster: %d broker(s), controller %d", len(brokers), controller), nil
	},
	"produce_consume": func() (string, error) {
		topic, _ := names("produce_consume")
		return "1000 keyed records with headers read back exactly", roundtrip(topic, keyed(n, "k"), nil)
	},
	"group_commit": func() (string, error) {
		topic, group := names("group")
		a, err := admin()
		if err != nil {
			return "", err
		}
		err = a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false)
		a.Close()
		if err != nil {
			return "", fmt.Errorf("CreateTopic: %w", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ms := []*member{{}, {}}
		var groups []sarama.ConsumerGroup
		for _, m := range ms {
			g, err := runMember(ctx, group, topic, m)
			if err != nil {
				return "", err
			}
			groups = append(groups, g)
		}
		if !waitUntil(func() bool { return ms[0].holds() && ms[1].holds() }, 30*time.Second) {
			return "", failf("both members never held partitions: %v %v", ms[0].holds(), ms[1].holds())
		}
		for p := int32(0); p < 2; p++ {
			if err := produce(topic, keyed(groupPerPartition, fmt.Sprintf("p%d-", p)), p, nil, nil); err != nil {
				return "", err
			}
		}
		waitUntil(func() bool { return ms[0].count()+ms[1].count() >= 2*groupPerPartition }, 30*time.Second)
		cancel()
		for _, g := range groups {
			g.Close()
		}
		total := ms[0].count() + ms[1].count()
		if total != 2*groupPerPartition {
			return "", failf("consumed %d records, expected %d", total, 2*groupPerPartition)
		}
		a, err = admin()
		if err != nil {
			return "", err
		}
		defer a.Close()
		resp, err := a.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
		if err != nil {
			return "", err
		}
		var offs []int64
		for p := int32(0); p < 2; p++ {
			b := resp.GetBlock(topic, p)
			if b == nil {
				return "", failf("no committed offset for partition %d", p)
			}
			offs = append(offs, b.Offset)
		}
		if offs[0] != groupPerPartition || offs[1] != groupPerPartition {
			return "", failf("committed offsets %v", offs)
		}
		return fmt.Sprintf("two members, %d+%d records, committed %v (MarkMessage, auto commit)", ms[0].count(), ms[1].count(), offs), nil
	},
	"group_resume": func() (string, error) {
		topic, group := names("group")
		for p := int32(0); p < 2; p++ {
			if err := produce(topic, keyed(resumePerPart, fmt.Sprintf("r%d-", p)), p, nil, nil); err != nil {
				return "", err
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{}
		g, err := runMember(ctx, group, topic, m)
		if err != nil {
			cancel()
			return "", err
		}
		waitUntil(func() bool { return m.count() >= 2*resumePerPart }, 30*time.Second)
		time.Sleep(time.Second)
		cancel()
		g.Close()
		var got []string
		for _, msg := range m.got {
			got = append(got, fmt.Sprintf("%d:%02d", msg.Partition, msg.Offset))
		}
		sort.Strings(got)
		var want []string
		for p := 0; p < 2; p++ {
			for o := 50; o < 60; o++ {
				want = append(want, fmt.Sprintf("%d:%02d", p, o))
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return "", failf("after restart consumed %v (%d), expected offsets 50..59 of each partition", got, len(got))
		}
		return "fresh member resumed at the committed offsets after a broker restart", nil
	},
	"admin": func() (string, error) {
		topic, _ := names("admin")
		a, err := admin()
		if err != nil {
			return "", err
		}
		defer a.Close()
		if err := a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			return "", fmt.Errorf("CreateTopic: %w", err)
		}
		if !waitUntil(func() bool { c, _ := partitionsOf(topic); return c == 3 }, 10*time.Second) {
			return "", failf("created topic does not show 3 partitions")
		}
		if err := a.CreatePartitions(topic, 5, nil, false); err != nil {
			return "", fmt.Errorf("CreatePartitions: %w", err)
		}
		if !waitUntil(func() bool { c, _ := partitionsOf(topic); return c == 5 }, 10*time.Second) {
			return "", failf("CreatePartitions: topic does not show 5 partitions")
		}
		if err := a.DeleteTopic(topic); err != nil {
			return "", fmt.Errorf("DeleteTopic: %w", err)
		}
		// Checked through Metadata for all topics (asking for the one topic would
		// auto-create it again).
		if !waitUntil(func() bool { return !listed(topic) }, 10*time.Second) {
			return "", failf("deleted topic still listed")
		}
		return "CreateTopic (3) -> CreatePartitions (5) -> DeleteTopic", nil
	},
	"idempotent": func() (string, error) {
		topic, _ := names("idempotent")
		return "Producer.Idempotent, 1000 records exactly once", roundtrip(topic, keyed(n, "k"), func(c *sarama.Config) {
			c.Producer.Idempotent = true
			c.Net.MaxOpenRequests = 1
		})
	},
	"crc": func() (string, error) {
		// sarama always checks the CRC of every batch it decodes (crc32Field.check);
		// there is no switch to turn it on or off.
		topic, _ := names("crc")
		return "CRC always verified by sarama's decoder, lz4 batches", roundtrip(topic, keyed(300, "k"), func(c *sarama.Config) {
			c.Producer.Compression = sarama.CompressionLZ4
		})
	},
	"large_record": func() (string, error) {
		topic, _ := names("large_record")
		big := make([]byte, large)
		rand.Read(big)
		c := config()
		p, err := sarama.NewSyncProducer([]string{bootstrap}, c)
		if err != nil {
			return "", err
		}
		_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder("big"), Value: sarama.ByteEncoder(big)})
		p.Close()
		if err != nil {
			return "", err
		}
		got, err := consume(topic, 0, sarama.OffsetOldest, 1, nil)
		if err != nil {
			return "", err
		}
		if len(got) != 1 || !bytes.Equal(got[0].Value, big) {
			return "", failf("1 MiB record not read back (%d records)", len(got))
		}
		return "1 MiB value (Producer.MaxMessageBytes raised to 4 MiB)", nil
	},
	"offset_seek": func() (string, error) {
		topic, _ := names("offset_seek")
		recs := keyed(100, "k")
		if err := produce(topic, recs, 0, nil, nil); err != nil {
			return "", err
		}
		got, err := consume(topic, 0, 42, 58, nil)
		if err != nil {
			return "", err
		}
		if len(got) == 0 || got[0].Offset != 42 {
			return "", failf("from offset 42 got %d records", len(got))
		}
		return "ConsumePartition at offset 42: offsets 42..99", checkSame(recs[42:], got)
	},
	"timestamp": func() (string, error) {
		topic, _ := names("timestamp")
		recs := keyed(100, "k")
		if err := produce(topic, recs, 0, nil, func(i int) time.Time {
			return time.Unix(0, (tsBase+int64(i)*1000)*int64(time.Millisecond))
		}); err != nil {
			return "", err
		}
		client, err := sarama.NewClient([]string{bootstrap}, config())
		if err != nil {
			return "", err
		}
		off, err := client.GetOffset(topic, 0, tsBase+50500)
		client.Close()
		if err != nil {
			return "", err
		}
		if off != 51 {
			return "", failf("GetOffset(ts of #50 + 500 ms) = %d, expected 51", off)
		}
		got, err := consume(topic, 0, off, 49, nil)
		if err != nil {
			return "", err
		}
		if err := checkSame(recs[51:], got); err != nil {
			return "", err
		}
		if ms := got[0].Timestamp.UnixNano() / int64(time.Millisecond); ms != tsBase+51000 {
			return "", failf("timestamp %d", ms)
		}
		return "GetOffset(topic, partition, time) -> 51, consumed 51..99 with their timestamps", nil
	},
	"no_autocreate": func() (string, error) {
		topic, _ := names("no_autocreate")
		c := config()
		c.Metadata.Retry.Max = 1
		p, err := sarama.NewSyncProducer([]string{bootstrap}, c)
		if err != nil {
			return "", err
		}
		_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("v")})
		p.Close()
		if err == nil {
			return "", failf("produce to a missing topic succeeded with auto-create off")
		}
		if c, _ := partitionsOf(topic); c > 0 {
			return "", failf("topic was created")
		}
		if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) && !strings.Contains(err.Error(), "does not exist") {
			return "", failf("unexpected error: %v", err)
		}
		return err.Error(), nil
	},
}

func init() {
	for _, codec := range []struct {
		name string
		c    sarama.CompressionCodec
	}{{"gzip", sarama.CompressionGZIP}, {"snappy", sarama.CompressionSnappy}, {"lz4", sarama.CompressionLZ4}, {"zstd", sarama.CompressionZSTD}} {
		codec := codec
		scenarios["compression_"+codec.name] = func() (string, error) {
			topic, _ := names("compression_" + codec.name)
			return "300 records, Producer.Compression=" + codec.name, roundtrip(topic, keyed(300, "k"), func(c *sarama.Config) {
				c.Producer.Compression = codec.c
			})
		}
	}
}

func main() {
	bootstrap, tag = os.Args[1], os.Args[3]
	scenario := os.Args[2]
	result, detail := "pass", ""
	fn, ok := scenarios[scenario]
	var err error
	if !ok {
		err = unsupported{"not implemented for this client"}
	} else {
		detail, err = fn()
	}
	var u unsupported
	var f failure
	switch {
	case err == nil:
	case errors.As(err, &u):
		result, detail = "unsupported", u.msg
	case errors.As(err, &f):
		result, detail = "fail", f.msg
	default:
		result, detail = "fail", err.Error()
	}
	line, _ := json.Marshal(map[string]string{"client": "sarama-ibm", "version": saramaVersion(), "scenario": scenario, "result": result, "detail": detail})
	fmt.Println(string(line))
}
