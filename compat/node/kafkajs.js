// kafkajs (its own protocol code) driver of the compatibility matrix.
// Usage: node kafkajs.js BOOTSTRAP SCENARIO TAG; prints one JSON line
// {"client","version","scenario","result","detail"} (see compat/python/common.py).
'use strict'
const crypto = require('crypto')
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')
const VERSION = require('kafkajs/package.json').version

const [bootstrap, scenario, tag] = process.argv.slice(2)
const N = 1000
const GROUP_PER_PARTITION = 50
const RESUME_PER_PARTITION = 10
const TS_BASE = 1700000000000
const LARGE = 1024 * 1024

class Fail extends Error {}
class Unsupported extends Error {}

const kafka = new Kafka({
  clientId: 'compat-kafkajs',
  brokers: [bootstrap],
  logLevel: logLevel.NOTHING,
  retry: { retries: 3, initialRetryTime: 100 },
  requestTimeout: 15000,
})

const names = (s) => {
  const topic = `compat-${tag}-${s}`.replace(/_/g, '-')
  return [topic, `${topic}-group`]
}
const value = (i) => `value-${i}-${'x'.repeat(i % 17)}`
const keyed = (n = N, prefix = 'k') =>
  Array.from({ length: n }, (_, i) => ({
    key: `${prefix}${i}`,
    value: value(i),
    headers: { idx: String(i), src: 'compat' },
  }))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function waitUntil(pred, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await pred()) return true
    await sleep(100)
  }
  return pred()
}

async function produce(topic, messages, { partition = 0, compression, idempotent = false } = {}) {
  const p = kafka.producer(idempotent ? { idempotent: true, maxInFlightRequests: 1 } : {})
  await p.connect()
  try {
    for (let i = 0; i < messages.length; i += 500) {
      await p.send({
        topic,
        compression,
        acks: -1,
        messages: messages.slice(i, i + 500).map((m) => ({ partition, ...m })),
      })
    }
  } finally {
    await p.disconnect()
  }
}

// kafkajs has no assign(): a fresh group per read, seeking to the offset.
async function consumeFrom(topic, partition, offset, n, { maxBytes } = {}) {
  const c = kafka.consumer({
    groupId: `${topic}-reader-${crypto.randomBytes(4).toString('hex')}`,
    maxWaitTimeInMs: 100,
    ...(maxBytes ? { maxBytesPerPartition: maxBytes, maxBytes: 4 * maxBytes } : {}),
  })
  const out = []
  await c.connect()
  try {
    await c.subscribe({ topic, fromBeginning: true })
    await c.run({
      autoCommit: false,
      eachMessage: async ({ partition: p, message }) => {
        if (p === partition) out.push(message)
      },
    })
    c.seek({ topic, partition, offset: String(offset) })
    await waitUntil(() => out.length >= n, 20000)
  } finally {
    await c.disconnect()
  }
  return out
}

const headersOf = (m) =>
  Object.fromEntries(Object.entries(m.headers || {}).map(([k, v]) => [k, v.toString()]))
function checkSame(expected, got) {
  if (got.length !== expected.length) throw new Fail(`expected ${expected.length} records, got ${got.length}`)
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]
    const g = { key: got[i].key.toString(), value: got[i].value.toString(), headers: headersOf(got[i]) }
    if (JSON.stringify(e) !== JSON.stringify(g))
      throw new Fail(`first difference at #${i}: expected ${JSON.stringify(e)}, got ${JSON.stringify(g)}`)
  }
}

async function roundtrip(topic, recs, opts = {}) {
  await produce(topic, recs, opts)
  checkSame(recs, await consumeFrom(topic, 0, 0, recs.length))
}

async function withAdmin(fn) {
  const a = kafka.admin()
  await a.connect()
  try {
    return await fn(a)
  } finally {
    await a.disconnect()
  }
}

async function partitionsOf(a, topic) {
  const md = await a.fetchTopicMetadata({ topics: [topic] })
  return md.topics[0].partitions.map((p) => p.partitionId).sort()
}

const codecs = { gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD }

const scenarios = {
  async metadata() {
    const [topic] = names('metadata')
    await produce(topic, keyed(1))
    return withAdmin(async (a) => {
      const topics = await a.listTopics()
      if (!topics.includes(topic)) throw new Fail(`${topic} not listed`)
      const parts = await partitionsOf(a, topic)
      if (JSON.stringify(parts) !== '[0]') throw new Fail(`partitions ${parts}`)
      const cluster = await a.describeCluster()
      return `listTopics, fetchTopicMetadata, describeCluster: ${cluster.clusterId}, ${cluster.brokers.length} broker(s)`
    })
  },
  async produce_consume() {
    const [topic] = names('produce_consume')
    await roundtrip(topic, keyed())
    return '1000 keyed records with headers read back exactly'
  },
  async group_commit() {
    const [topic, group] = names('group')
    await withAdmin((a) => a.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true }))
    const members = [0, 1].map(() => kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 }))
    const got = [[], []]
    const assigned = [false, false]
    const total = 2 * GROUP_PER_PARTITION
    try {
      for (const [i, c] of members.entries()) {
        c.on(c.events.GROUP_JOIN, (e) => {
          assigned[i] = Object.values(e.payload.memberAssignment).some((ps) => ps.length > 0)
        })
        await c.connect()
        await c.subscribe({ topic, fromBeginning: true })
        await c.run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            got[i].push(message)
            await c.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
          },
        })
      }
      if (!(await waitUntil(() => assigned[0] && assigned[1], 30000)))
        throw new Fail(`both members never held partitions: ${assigned}`)
      for (const p of [0, 1]) await produce(topic, keyed(GROUP_PER_PARTITION, `p${p}-`), { partition: p })
      await waitUntil(() => got[0].length + got[1].length >= total, 30000)
    } finally {
      for (const c of members) await c.disconnect()
    }
    const n = got[0].length + got[1].length
    if (n !== total) throw new Fail(`consumed ${n} records, expected ${total}`)
    const offs = await withAdmin((a) => a.fetchOffsets({ groupId: group, topics: [topic] }))
    const committed = offs[0].partitions.sort((x, y) => x.partition - y.partition).map((p) => Number(p.offset))
    if (JSON.stringify(committed) !== '[50,50]') throw new Fail(`committed offsets ${committed}`)
    return `two members, ${got[0].length}+${got[1].length} records, committed ${committed} (commitOffsets per message)`
  },
  async group_resume() {
    const [topic, group] = names('group')
    for (const p of [0, 1]) await produce(topic, keyed(RESUME_PER_PARTITION, `r${p}-`), { partition: p })
    const c = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
    const got = []
    await c.connect()
    try {
      await c.subscribe({ topic, fromBeginning: true })
      await c.run({ autoCommit: false, eachMessage: async ({ partition, message }) => got.push([partition, Number(message.offset)]) })
      await waitUntil(() => got.length >= 2 * RESUME_PER_PARTITION, 30000)
      await sleep(1000)
    } finally {
      await c.disconnect()
    }
    got.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    const want = []
    for (const p of [0, 1]) for (let o = 50; o < 60; o++) want.push([p, o])
    if (JSON.stringify(got) !== JSON.stringify(want))
      throw new Fail(`after restart consumed ${JSON.stringify(got.slice(0, 6))}... (${got.length}), expected offsets 50..59 of each partition`)
    return 'fresh member resumed at the committed offsets after a broker restart'
  },
  async admin() {
    const [topic] = names('admin')
    return withAdmin(async (a) => {
      await a.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
      if (!(await waitUntil(async () => (await partitionsOf(a, topic)).length === 3, 10000))) throw new Fail('created topic does not show 3 partitions')
      await a.createPartitions({ topicPartitions: [{ topic, count: 5 }] })
      if (!(await waitUntil(async () => (await partitionsOf(a, topic)).length === 5, 10000))) throw new Fail('createPartitions: not 5 partitions')
      await a.deleteTopics({ topics: [topic] })
      if (!(await waitUntil(async () => !(await a.listTopics()).includes(topic), 10000))) throw new Fail('deleted topic still listed')
      return 'createTopics (3) -> createPartitions (5) -> deleteTopics'
    })
  },
  async idempotent() {
    const [topic] = names('idempotent')
    await roundtrip(topic, keyed(), { idempotent: true })
    return 'idempotent: true, 1000 records exactly once'
  },
  async crc() {
    throw new Unsupported('kafkajs reads the v2 batch CRC but never verifies it (no check.crcs option)')
  },
  async large_record() {
    const [topic] = names('large_record')
    const big = crypto.randomBytes(LARGE)
    await produce(topic, [{ key: 'big', value: big, headers: { h: '1' } }])
    const got = await consumeFrom(topic, 0, 0, 1, { maxBytes: 4 * LARGE })
    if (got.length !== 1 || !got[0].value.equals(big)) throw new Fail(`1 MiB record not read back (${got.length} records)`)
    return '1 MiB value (maxBytesPerPartition raised to 4 MiB)'
  },
  async offset_seek() {
    const [topic] = names('offset_seek')
    const recs = keyed(100)
    await produce(topic, recs)
    const got = await consumeFrom(topic, 0, 42, 58)
    const offs = got.map((m) => Number(m.offset))
    if (offs[0] !== 42 || offs.length !== 58) throw new Fail(`from offset 42 got offsets ${offs.slice(0, 5)}... (${offs.length})`)
    checkSame(recs.slice(42), got)
    return 'seek to offset 42: offsets 42..99'
  },
  async timestamp() {
    const [topic] = names('timestamp')
    const recs = keyed(100)
    await produce(topic, recs.map((m, i) => ({ ...m, timestamp: String(TS_BASE + i * 1000) })))
    const found = await withAdmin((a) => a.fetchTopicOffsetsByTimestamp(topic, TS_BASE + 50500))
    const off = Number(found.find((p) => p.partition === 0).offset)
    if (off !== 51) throw new Fail(`fetchTopicOffsetsByTimestamp(ts of #50 + 500 ms) = ${off}, expected 51`)
    const got = await consumeFrom(topic, 0, off, 49)
    checkSame(recs.slice(51), got)
    if (Number(got[0].timestamp) !== TS_BASE + 51000) throw new Fail(`timestamp ${got[0].timestamp}`)
    return 'fetchTopicOffsetsByTimestamp -> 51, consumed 51..99 with their timestamps'
  },
  async no_autocreate() {
    const [topic] = names('no_autocreate')
    const p = kafka.producer({ allowAutoTopicCreation: true, retry: { retries: 2, initialRetryTime: 100 } })
    await p.connect()
    let err
    try {
      await p.send({ topic, messages: [{ value: 'v' }] })
    } catch (e) {
      err = e
    } finally {
      await p.disconnect()
    }
    if (!err) throw new Fail('produce to a missing topic succeeded with auto-create off')
    if (await withAdmin(async (a) => (await a.listTopics()).includes(topic))) throw new Fail('topic was created')
    const text = `${err.name}: ${err.message}${err.type ? ` (${err.type})` : ''}`
    if (!/UNKNOWN_TOPIC_OR_PARTITION|does not host this topic/i.test(text + (err.cause ? err.cause.type : ''))) throw new Fail(`unexpected error ${text}`)
    return text
  },
}
for (const codec of Object.keys(codecs)) {
  scenarios[`compression_${codec}`] = async () => {
    if (codec !== 'gzip')
      throw new Unsupported(`kafkajs ships only gzip; ${codec} needs a third-party codec package (not installed)`)
    const [topic] = names(`compression_${codec}`)
    await roundtrip(topic, keyed(300), { compression: codecs[codec] })
    return `300 records, CompressionTypes.${codec.toUpperCase()}`
  }
}

;(async () => {
  let result = 'pass'
  let detail = ''
  try {
    const fn = scenarios[scenario]
    if (!fn) throw new Unsupported('not implemented for this client')
    detail = (await fn()) || ''
  } catch (e) {
    if (e instanceof Unsupported) result = 'unsupported'
    else result = 'fail'
    detail = e instanceof Fail || e instanceof Unsupported ? e.message : `${e.name}: ${e.message}`
  }
  process.stdout.write(JSON.stringify({ client: 'kafkajs', version: VERSION, scenario, result, detail }) + '\n')
  process.exit(0)
})()
