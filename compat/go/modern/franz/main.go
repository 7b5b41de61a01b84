// franz-go (github.com/twmb/franz-go: kgo and kadm, from the Go module proxy) driver of
// the compatibility matrix. Usage: franz-go BOOTSTRAP SCENARIO TAG; prints one JSON line
// {"client","version","scenario","result","detail"} (see compat/python/common.py).
// Every client asks for auto topic creation (kgo.AllowAutoTopicCreation), as the other
// drivers' clients do by default.
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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	n                 = 1000
	groupPerPartition = 50
	resumePerPart     = 10
	tsBase            = int64(1700000000000)
	large             = 1024 * 1024
)

type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func failf(format string, a ...interface{}) error { return failure{fmt.Sprintf(format, a...)} }

var bootstrap, tag string

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				return d.Version + " (Go module, kadm)"
			}
		}
	}
	return "unknown"
}

func names(s string) (string, string) {
	t := "compat-" + tag + "-" + strings.ReplaceAll(s, "_", "-")
	return t, t + "-group"
}

func client(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.ClientID("compat-franz-go"), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.FetchMaxWait(100 * time.Millisecond)}
	return kgo.NewClient(append(base, opts...)...)
}

func keyed(count int, prefix string) []*kgo.Record {
	out := make([]*kgo.Record, count)
	for i := range out {
		out[i] = &kgo.Record{Key: []byte(fmt.Sprintf("%s%d", prefix, i)),
			Value:   []byte(fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%17))),
			Headers: []kgo.RecordHeader{{Key: "idx", Value: []byte(fmt.Sprint(i))}, {Key: "src", Value: []byte("compat")}}}
	}
	return out
}

func show(r *kgo.Record) string {
	var h []string
	for _, x := range r.Headers {
		h = append(h, x.Key+":"+string(x.Value))
	}
	return string(r.Key) + "=" + string(r.Value) + " " + strings.Join(h, ",")
}

func produce(topic string, recs []*kgo.Record, partition int32, ts func(int) time.Time, opts ...kgo.Opt) error {
	cl, err := client(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, r := range recs {
		r.Topic, r.Partition = topic, partition
		if ts != nil {
			r.Timestamp = ts(i)
		}
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

func consume(topic string, partition int32, offset kgo.Offset, count int, opts ...kgo.Opt) ([]*kgo.Record, error) {
	cl, err := client(append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: offset}})},
		opts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < count && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		var ferr error
		fs.EachError(func(_ string, _ int32, e error) {
			if !errors.Is(e, context.DeadlineExceeded) {
				ferr = e
			}
		})
		if ferr != nil {
			return out, ferr
		}
		out = append(out, fs.Records()...)
	}
	return out, nil
}

func checkSame(want, got []*kgo.Record) error {
	if len(got) != len(want) {
		return failf("expected %d records, got %d", len(want), len(got))
	}
	for i := range got {
		if show(got[i]) != show(want[i]) {
			return failf("first difference at #%d: expected %s, got %s", i, show(want[i]), show(got[i]))
		}
	}
	return nil
}

func roundtrip(topic string, count int, opts ...kgo.Opt) error {
	recs := keyed(count, "k")
	if err := produce(topic, recs, 0, nil, opts...); err != nil {
		return err
	}
	got, err := consume(topic, 0, kgo.NewOffset().AtStart(), count)
	if err != nil {
		return err
	}
	return checkSame(keyed(count, "k"), got)
}

func admin() (*kadm.Client, *kgo.Client, error) {
	cl, err := client()
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

func ctx10() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func partitionsOf(adm *kadm.Client, topic string) int {
	ctx, cancel := ctx10()
	defer cancel()
	td, err := adm.ListTopics(ctx, topic)
	if err != nil || td[topic].Err != nil {
		return -1
	}
	return len(td[topic].Partitions)
}

func listed(adm *kadm.Client, topic string) bool {
	ctx, cancel := ctx10()
	defer cancel()
	td, err := adm.ListTopics(ctx)
	if err != nil {
		return true
	}
	return td.Has(topic)
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

type member struct {
	mu   sync.Mutex
	got  []string
	held map[int32]bool // partitions held now (cooperative rebalances add and revoke some)
	cl   *kgo.Client
	done chan struct{}
}

func startMember(group, topic string) (*member, error) {
	m := &member{done: make(chan struct{}), held: map[int32]bool{}}
	drop := func(ctx context.Context, c *kgo.Client, r map[string][]int32) {
		m.mu.Lock()
		for _, p := range r[topic] {
			delete(m.held, p)
		}
		m.mu.Unlock()
		c.CommitUncommittedOffsets(ctx)
	}
	cl, err := client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			for _, p := range a[topic] {
				m.held[p] = true
			}
			m.mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(drop), kgo.OnPartitionsLost(drop))
	if err != nil {
		return nil, err
	}
	m.cl = cl
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				m.mu.Lock()
				m.got = append(m.got, fmt.Sprintf("%d:%02d", r.Partition, r.Offset))
				m.mu.Unlock()
			})
			if fs.NumRecords() > 0 {
				ctx, cancel := ctx10()
				cl.CommitUncommittedOffsets(ctx)
				cancel()
			}
		}
	}()
	return m, nil
}

func (m *member) count() int  { m.mu.Lock(); defer m.mu.Unlock(); return len(m.got) }
func (m *member) holds() bool { m.mu.Lock(); defer m.mu.Unlock(); return len(m.held) > 0 }
func (m *member) close() {
	ctx, cancel := ctx10()
	m.cl.CommitUncommittedOffsets(ctx)
	cancel()
	m.cl.Close()
	<-m.done
}

var scenarios = map[string]func() (string, error){
	"metadata": func() (string, error) {
		topic, _ := names("metadata")
		if err := produce(topic, keyed(1, "k"), 0, nil); err != nil {
			return "", err
		}
		adm, cl, err := admin()
		if err != nil {
			return "", err
		}
		defer cl.Close()
		if c := partitionsOf(adm, topic); c != 1 {
			return "", failf("ListTopics: %s has %d partitions, expected 1", topic, c)
		}
		ctx, cancel := ctx10()
		defer cancel()
		md, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("kadm ListTopics, BrokerMetadata: %d broker(s), controller %d, cluster %s", len(md.Brokers),
			md.Controller, md.Cluster), nil
	},
	"produce_consume": func() (string, error) {
		topic, _ := names("produce_consume")
		return "1000 keyed records with headers read back exactly (idempotent producer, franz-go's default)",
			roundtrip(topic, n)
	},
	"group_commit": func() (string, error) {
		topic, group := names("group")
		adm, cl, err := admin()
		if err != nil {
			return "", err
		}
		ctx, cancel := ctx10()
		_, err = adm.CreateTopic(ctx, 2, 1, nil, topic)
		cancel()
		cl.Close()
		if err != nil {
			return "", fmt.Errorf("CreateTopic: %w", err)
		}
		var ms []*member
		for i := 0; i < 2; i++ {
			m, err := startMember(group, topic)
			if err != nil {
				return "", err
			}
			ms = append(ms, m)
		}
		closed := false
		closeAll := func() {
			if !closed {
				closed = true
				for _, m := range ms {
					m.close()
				}
			}
		}
		defer closeAll()
		if !waitUntil(func() bool { return ms[0].holds() && ms[1].holds() }, 30*time.Second) {
			return "", failf("both members never held partitions: %v %v", ms[0].holds(), ms[1].holds())
		}
		for p := int32(0); p < 2; p++ {
			if err := produce(topic, keyed(groupPerPartition, fmt.Sprintf("p%d-", p)), p, nil); err != nil {
				return "", err
			}
		}
		waitUntil(func() bool { return ms[0].count()+ms[1].count() >= 2*groupPerPartition }, 30*time.Second)
		c0, c1 := ms[0].count(), ms[1].count()
		closeAll()
		if c0+c1 != 2*groupPerPartition {
			return "", failf("consumed %d records, expected %d", c0+c1, 2*groupPerPartition)
		}
		adm, cl, err = admin()
		if err != nil {
			return "", err
		}
		defer cl.Close()
		ctx, cancel = ctx10()
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return "", err
		}
		var got []int64
		for p := int32(0); p < 2; p++ {
			o, ok := offs.Lookup(topic, p)
			if !ok {
				return "", failf("no committed offset for partition %d", p)
			}
			got = append(got, o.At)
		}
		if got[0] != groupPerPartition || got[1] != groupPerPartition {
			return "", failf("committed offsets %v", got)
		}
		return fmt.Sprintf("two members, %d+%d records, committed %v (CommitUncommittedOffsets, kadm FetchOffsets)", c0, c1, got), nil
	},
	"group_resume": func() (string, error) {
		topic, group := names("group")
		for p := int32(0); p < 2; p++ {
			if err := produce(topic, keyed(resumePerPart, fmt.Sprintf("r%d-", p)), p, nil); err != nil {
				return "", err
			}
		}
		m, err := startMember(group, topic)
		if err != nil {
			return "", err
		}
		waitUntil(func() bool { return m.count() >= 2*resumePerPart }, 30*time.Second)
		time.Sleep(time.Second)
		m.close()
		got := append([]string(nil), m.got...)
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
		adm, cl, err := admin()
		if err != nil {
			return "", err
		}
		defer cl.Close()
		ctx, cancel := ctx10()
		defer cancel()
		if r, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil || r.Err != nil {
			return "", fmt.Errorf("CreateTopic: %v %v", err, r.Err)
		}
		if !waitUntil(func() bool { return partitionsOf(adm, topic) == 3 }, 10*time.Second) {
			return "", failf("created topic does not show 3 partitions")
		}
		rs, err := adm.UpdatePartitions(ctx, 5, topic)
		if err == nil {
			err = rs.Error()
		}
		if err != nil {
			return "", fmt.Errorf("UpdatePartitions: %w", err)
		}
		if !waitUntil(func() bool { return partitionsOf(adm, topic) == 5 }, 10*time.Second) {
			return "", failf("UpdatePartitions: topic does not show 5 partitions")
		}
		if r, err := adm.DeleteTopic(ctx, topic); err != nil || r.Err != nil {
			return "", fmt.Errorf("DeleteTopic: %v %v", err, r.Err)
		}
		if !waitUntil(func() bool { return !listed(adm, topic) }, 10*time.Second) {
			return "", failf("deleted topic still listed")
		}
		return "kadm CreateTopic (3) -> UpdatePartitions (5) -> DeleteTopic", nil
	},
	"idempotent": func() (string, error) {
		topic, _ := names("idempotent")
		// Idempotence is franz-go's default (kgo.DisableIdempotentWrite turns it off).
		return "idempotent producer (the default), 1000 records exactly once", roundtrip(topic, n)
	},
	"crc": func() (string, error) {
		// kgo validates every batch's CRC while decoding a fetch; there is no switch.
		topic, _ := names("crc")
		return "CRC always verified by kgo's fetch decoder, lz4 batches",
			roundtrip(topic, 300, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	},
	"large_record": func() (string, error) {
		topic, _ := names("large_record")
		big := make([]byte, large)
		rand.Read(big)
		if err := produce(topic, []*kgo.Record{{Key: []byte("big"), Value: big}}, 0, nil,
			kgo.ProducerBatchMaxBytes(4*large)); err != nil {
			return "", err
		}
		got, err := consume(topic, 0, kgo.NewOffset().AtStart(), 1)
		if err != nil {
			return "", err
		}
		if len(got) != 1 || !bytes.Equal(got[0].Value, big) {
			return "", failf("1 MiB record not read back (%d records)", len(got))
		}
		return "1 MiB value (ProducerBatchMaxBytes raised to 4 MiB)", nil
	},
	"offset_seek": func() (string, error) {
		topic, _ := names("offset_seek")
		if err := produce(topic, keyed(100, "k"), 0, nil); err != nil {
			return "", err
		}
		got, err := consume(topic, 0, kgo.NewOffset().At(42), 58)
		if err != nil {
			return "", err
		}
		return "ConsumePartitions at offset 42: offsets 42..99", checkSame(keyed(100, "k")[42:], got)
	},
	"timestamp": func() (string, error) {
		topic, _ := names("timestamp")
		at := func(i int) time.Time { return time.UnixMilli(tsBase + int64(i)*1000) }
		if err := produce(topic, keyed(100, "k"), 0, at); err != nil {
			return "", err
		}
		adm, cl, err := admin()
		if err != nil {
			return "", err
		}
		ctx, cancel := ctx10()
		lo, err := adm.ListOffsetsAfterMilli(ctx, tsBase+50500, topic)
		cancel()
		cl.Close()
		if err != nil {
			return "", err
		}
		o, ok := lo.Lookup(topic, 0)
		if !ok || o.Err != nil || o.Offset != 51 {
			return "", failf("ListOffsetsAfterMilli(ts of #50 + 500 ms) = %+v, expected 51", o)
		}
		got, err := consume(topic, 0, kgo.NewOffset().At(51), 49)
		if err != nil {
			return "", err
		}
		if err := checkSame(keyed(100, "k")[51:], got); err != nil {
			return "", err
		}
		for i, r := range got {
			if r.Timestamp.UnixMilli() != tsBase+int64(51+i)*1000 {
				return "", failf("record %d has timestamp %d", 51+i, r.Timestamp.UnixMilli())
			}
		}
		return "kadm ListOffsetsAfterMilli -> 51, consumed 51..99 with their timestamps", nil
	},
	"no_autocreate": func() (string, error) {
		topic, _ := names("no_autocreate")
		err := produce(topic, keyed(1, "k"), 0, nil, kgo.RecordDeliveryTimeout(8*time.Second), kgo.UnknownTopicRetries(2))
		if err == nil {
			return "", failf("produce to a missing topic succeeded with auto-create off")
		}
		adm, cl, aerr := admin()
		if aerr != nil {
			return "", aerr
		}
		defer cl.Close()
		if listed(adm, topic) {
			return "", failf("topic was created")
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return "", failf("unexpected error: %v", err)
		}
		return err.Error(), nil
	},
}

// endOffsets: partition 0's end for read_uncommitted (high watermark) and read_committed
// (last stable offset), from kadm's ListEndOffsets and ListCommittedOffsets.
func endOffsets(topic string) (int64, int64, error) {
	adm, cl, err := admin()
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	ctx, cancel := ctx10()
	defer cancel()
	hw, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	h, _ := hw.Lookup(topic, 0)
	l, _ := lso.Lookup(topic, 0)
	if h.Err != nil || l.Err != nil {
		return 0, 0, failf("ListEndOffsets %v, ListCommittedOffsets %v", h.Err, l.Err)
	}
	return h.Offset, l.Offset, nil
}

func values(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}

func prefixed(prefix string, count int) []string {
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// transactions: commit, abort (an open transaction holds back the last stable offset), and
// consume-transform-produce in a GroupTransactSession (the polled offsets commit with the
// transaction).
func transactions() (string, error) {
	out, group := names("transactions")
	in := out + "-in"
	if err := produce(in, keyed(6, "in"), 0, nil); err != nil {
		return "", err
	}
	committed, aborted := prefixed("c-", 10), prefixed("a-", 5)
	txnOpts := []kgo.Opt{kgo.TransactionalID("compat-" + tag + "-txn"), kgo.TransactionTimeout(60 * time.Second)}
	cl, err := client(txnOpts...)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	send := func(vs []string) error {
		rs := make([]*kgo.Record, len(vs))
		for i, v := range vs {
			rs[i] = &kgo.Record{Topic: out, Partition: 0, Key: []byte(v), Value: []byte(v)}
		}
		return cl.ProduceSync(ctx, rs...).FirstErr()
	}
	if err := cl.BeginTransaction(); err != nil {
		return "", err
	}
	if err := send(committed); err != nil {
		return "", err
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return "", err
	}
	if err := cl.BeginTransaction(); err != nil {
		return "", err
	}
	if err := send(aborted); err != nil {
		return "", err
	}
	hwOpen, lsoOpen, err := endOffsets(out)
	if err != nil {
		return "", err
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return "", err
	}
	cl.Close()
	if lsoOpen != int64(len(committed)+1) || hwOpen != int64(len(committed)+1+len(aborted)) {
		return "", failf("while a transaction was open: last stable offset %d (expected %d), high watermark %d",
			lsoOpen, len(committed)+1, hwOpen)
	}

	sess, err := kgo.NewGroupTransactSession(append(txnOpts, kgo.SeedBrokers(bootstrap),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		return "", err
	}
	var got []*kgo.Record
	for len(got) < 6 && ctx.Err() == nil {
		got = append(got, sess.PollFetches(ctx).Records()...)
	}
	if len(got) != 6 {
		sess.Close()
		return "", failf("consume-transform-produce: consumed %d of 6 input records", len(got))
	}
	var transformed []string
	if err := sess.Begin(); err != nil {
		sess.Close()
		return "", err
	}
	for _, r := range got {
		v := "t-" + string(r.Value)
		transformed = append(transformed, v)
		if err := sess.ProduceSync(ctx, &kgo.Record{Topic: out, Partition: 0, Key: r.Key, Value: []byte(v)}).FirstErr(); err != nil {
			sess.Close()
			return "", err
		}
	}
	ok, err := sess.End(ctx, kgo.TryCommit)
	sess.Close()
	if err != nil || !ok {
		return "", failf("GroupTransactSession.End(TryCommit): committed %v, %v", ok, err)
	}

	wantCommitted := append(append([]string{}, committed...), transformed...)
	rc, err := consume(out, 0, kgo.NewOffset().AtStart(), len(wantCommitted), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return "", err
	}
	if strings.Join(values(rc), ",") != strings.Join(wantCommitted, ",") {
		return "", failf("read_committed saw %v, expected %v", values(rc), wantCommitted)
	}
	wantAll := append(append(append([]string{}, committed...), aborted...), transformed...)
	ru, err := consume(out, 0, kgo.NewOffset().AtStart(), len(wantAll))
	if err != nil {
		return "", err
	}
	if strings.Join(values(ru), ",") != strings.Join(wantAll, ",") {
		return "", failf("read_uncommitted saw %v, expected %v", values(ru), wantAll)
	}
	adm, acl, err := admin()
	if err != nil {
		return "", err
	}
	defer acl.Close()
	fo, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return "", err
	}
	if o, found := fo.Lookup(in, 0); !found || o.Err != nil || o.At != 6 {
		return "", failf("group offset after the transaction %+v, expected 6", o)
	}
	return fmt.Sprintf("commit (10), abort (5; while open last stable offset %d, high watermark %d), "+
		"consume-transform-produce in a GroupTransactSession (6): read_committed %d records, read_uncommitted %d, "+
		"group offset 6", lsoOpen, hwOpen, len(rc), len(ru)), nil
}

func init() {
	scenarios["transactions"] = transactions
	for _, codec := range []struct {
		name string
		c    kgo.CompressionCodec
	}{{"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()}} {
		codec := codec
		scenarios["compression_"+codec.name] = func() (string, error) {
			topic, _ := names("compression_" + codec.name)
			return "300 records, ProducerBatchCompression(" + codec.name + ")",
				roundtrip(topic, 300, kgo.ProducerBatchCompression(codec.c))
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
		result, detail = "unsupported", "not implemented for this client"
	} else {
		detail, err = fn()
	}
	var f failure
	switch {
	case err == nil:
	case errors.As(err, &f):
		result, detail = "fail", f.msg
	default:
		result, detail = "fail", err.Error()
	}
	line, _ := json.Marshal(map[string]string{"client": "franz-go", "version": version(), "scenario": scenario,
		"result": result, "detail": detail})
	fmt.Println(string(line))
}
