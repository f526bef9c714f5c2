/**
 * The bench's PASS/FAIL against the anchors: ratios in the right direction (CPU and latency at
 * most a multiple, throughput at least a fraction), the boundary included, SKIP when an anchor
 * did not run rather than a PASS, the anchors' own ratios printed, memory bounds per sidecar.
 */
import { formatReport } from '../../bench/lib/report';
import { ADDED_P90_RESOLUTION_MS, MAX_PRIVATE_MB, MAX_RSS_MB, memoryTargets, ratio, ratioTargets } from '../../bench/lib/targets';

describe('bench ratio targets', () => {
  const nginx = { cpuPer1k: 0.2, maxRps: 10_000, addedP90Ms: 0.4 };
  const haproxy = { cpuPer1k: 0.25, maxRps: 8_000, addedP90Ms: 0.5 };

  test('a pair within every ratio passes; the rows name the anchor and print both anchors', () => {
    const t = ratioTargets({ cpuPer1k: 0.3, maxRps: 5_000, addedP90Ms: 0.6 }, { nginx, haproxy });
    expect(t.map((x) => x.status)).toEqual(['PASS', 'PASS', 'PASS']); // exactly 1.5x, 0.5x, 1.5x: the bounds are inclusive
    expect(t[0]).toMatchObject({ target: '<= 1.5x nginx', measured: '0.300 CPU-s = 1.50x nginx' });
    expect(t[0].anchors).toEqual({ nginx: '0.200 CPU-s (1.50x)', haproxy: '0.250 CPU-s (1.20x)' });
    expect(t[1]).toMatchObject({ target: '>= 0.5x nginx', measured: '5000 rps = 0.50x nginx' });
  });

  test('each ratio fails on its own side: more CPU, less throughput, more latency', () => {
    const t = ratioTargets({ cpuPer1k: 0.31, maxRps: 4_999, addedP90Ms: 0.61 }, { nginx });
    expect(t.map((x) => x.status)).toEqual(['FAIL', 'FAIL', 'FAIL']);
    // Less CPU, more throughput and less latency than nginx all pass (no accidental two-sided check).
    expect(ratioTargets({ cpuPer1k: 0.01, maxRps: 99_999, addedP90Ms: 0.02 }, { nginx }).map((x) => x.status)).toEqual(['PASS', 'PASS', 'PASS']);
  });

  test('SKIP, never PASS, when nginx or the pair was not measured', () => {
    expect(ratioTargets({ cpuPer1k: 0.3, maxRps: 5_000, addedP90Ms: 0.6 }, { haproxy }).map((x) => x.status)).toEqual(['SKIP', 'SKIP', 'SKIP']);
    expect(ratioTargets({}, { nginx }).map((x) => x.status)).toEqual(['SKIP', 'SKIP', 'SKIP']);
    expect(ratio(1, 0)).toBeUndefined();
    expect(ratio(NaN, 1)).toBeUndefined();
  });

  test('an anchor adding less than the resolution (even a negative figure) is taken at the resolution', () => {
    const t = ratioTargets({ addedP90Ms: ADDED_P90_RESOLUTION_MS * 1.5 }, { nginx: { addedP90Ms: -0.05 } });
    expect(t[2]).toMatchObject({ status: 'PASS', measured: `${(ADDED_P90_RESOLUTION_MS * 1.5).toFixed(3)} ms = 1.50x nginx` });
  });

  test('memory: RSS and private memory bounds per sidecar, inclusive', () => {
    const t = memoryTargets([{ role: 'outbound', rssMB: MAX_RSS_MB, privateMB: MAX_PRIVATE_MB + 0.1 }, { role: 'inbound' }]);
    expect(t.map((x) => `${x.name}: ${x.status}`)).toEqual([
      'peak RSS @<=1,000 rps, outbound sidecar: PASS',
      'peak private memory @<=1,000 rps, outbound sidecar: FAIL',
      'peak RSS @<=1,000 rps, inbound sidecar: SKIP',
      'peak private memory @<=1,000 rps, inbound sidecar: SKIP',
    ]);
  });

  test('the printed report has a column per anchor and the overload paragraph', () => {
    const text = formatReport({
      schemaVersion: 1, startedAt: 'now', wallSeconds: 1, environment: {}, method: {}, topologies: [], fixedRate: [], maxThroughput: [], memory: [],
      synth: { skipped: 'test' }, skipped: {},
      targets: ratioTargets({ cpuPer1k: 0.6, maxRps: 5_000, addedP90Ms: 0.6 }, { nginx, haproxy }),
      overload: { topology: 'typemesh', offeredRps: 8000, multiple: 2, connections: 2048, scheduled: 80_000, ok: 40_000, shedOL: 39_000, errorKinds: { 'status 503': 39_000, ECONNRESET: 3 }, achievedRps: 4000, admittedLatencyMs: { p50: 10, p90: 20, p99: 30, max: 40 }, admittedServiceMs: { p50: 1, p90: 2, p99: 3, max: 4 }, generatorLagP99Ms: 5, generatorCpuCores: 0.5, cpuCores: { outbound: 0.9, inbound: 0.8 } },
    });
    expect(text).toMatch(/FAIL +CPU per 1,000 requests .* 0\.600 CPU-s = 3\.00x nginx +0\.200 CPU-s \(3\.00x\) +0\.250 CPU-s \(2\.40x\)/);
    expect(text).toMatch(/nginx \(same run\) +haproxy \(same run\)/);
    expect(text).toMatch(/Overload: typemesh offered 8000 rps \(2x/);
    expect(text).toMatch(/Cores used: outbound 0\.90, inbound 0\.80\./);
    expect(text).toMatch(/80000 +40000 +4000 +39000 +ECONNRESET: 3 +10\.000 +20\.000 +30\.000 +40\.000 +1\.000 +2\.000 +3\.000 +5\.000 +0\.50/);
  });
});
