import { peakRssBytes, cpuSeconds, processGroup } from '../../bench/lib/proc-stats';
import { parseWrkOutput } from '../../bench/lib/wrk';
import { parseStraceSummary } from '../../bench/syscall-profile';

describe('bench /proc readers', () => {
  test('CPU seconds agree with what Node measures for itself', () => {
    const before = cpuSeconds(process.pid);
    const usageBefore = process.cpuUsage();
    // Burn a fixed amount of CPU (not wall time: the machine is shared).
    let x = 0;
    while ((process.cpuUsage(usageBefore).user + process.cpuUsage(usageBefore).system) < 300_000) x += Math.sqrt(x + 1);
    const usage = process.cpuUsage(usageBefore);
    const node = (usage.user + usage.system) / 1e6;
    expect(x).toBeGreaterThan(0);
    // /proc counts in 10 ms ticks.
    expect(Math.abs(cpuSeconds(process.pid) - before - node)).toBeLessThan(0.05);
  });

  test('peak RSS of this process is plausible and a group starts with its root', () => {
    expect(peakRssBytes(process.pid)).toBeGreaterThan(10e6);
    expect(processGroup(process.pid)[0]).toBe(process.pid);
  });
});

describe('wrk output', () => {
  const sample = `Running 6s test @ http://127.0.0.1:41234/bench
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.71ms  402.11us  10.02ms   90.12%
    Req/Sec    11.86k   512.33    12.50k    80.00%
  70812 requests in 6.00s, 82.31MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  11801.91
Transfer/sec:     13.72MB
`;

  test('reads rate, request count and every kind of error', () => {
    expect(parseWrkOutput(sample)).toEqual({ requestsPerSecond: 11801.91, requests: 70812, errors: 7 });
  });

  test('refuses output it does not understand', () => {
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/unexpected wrk output/);
  });
});

describe('strace -c summary', () => {
  test('reads calls per syscall, with and without an errors column, and skips the total', () => {
    const text = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.10    0.012000          15       800           writev
 30.00    0.009000           2      4320       160 read
  1.00    0.000300           1       240           epoll_pwait
------ ----------- ----------- --------- --------- ----------------
100.00    0.030000           5      5360       160 total
`;
    const calls = parseStraceSummary(text);
    expect([...calls.entries()]).toEqual([['writev', 800], ['read', 4320], ['epoll_pwait', 240]]);
  });
});
