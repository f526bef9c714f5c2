/**
 * The sidecar's own resource use (memory, CPU, event loop delay) for its /metrics. Written
 * here rather than taken from prom-client's collectDefaultMetrics because three of those
 * (nodejs_active_*_total gauges) fail `promtool check metrics`, and because a sidecar needs
 * only these few. Values are read at scrape time, so they cost nothing between scrapes.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';

/** Registers the process metrics in `registry`. */
export function registerProcessMetrics(registry: Registry): void {
  const registers = [registry];
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers,
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'nodejs_heap_used_bytes',
    help: 'V8 heap in use, in bytes.',
    registers,
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  let reportedCpuMicros = 0;
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'User and system CPU time spent, in seconds.',
    registers,
    collect() {
      const usage = process.cpuUsage();
      const total = usage.user + usage.system;
      // A counter only goes up: add what was spent since the last scrape.
      this.inc((total - reportedCpuMicros) / 1e6);
      reportedCpuMicros = total;
    },
  });
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since the Unix epoch, in seconds.',
    registers,
  }).set(Math.round((Date.now() - process.uptime() * 1000) / 1000));
  // Sampled by a libuv timer every 20 ms: no work on the request path.
  const delay = monitorEventLoopDelay({ resolution: 20 });
  delay.enable();
  new Gauge({
    name: 'nodejs_eventloop_delay_p99_seconds',
    help: '99th percentile of the event loop delay since the previous scrape, in seconds.',
    registers,
    collect() {
      this.set(delay.count > 0 ? delay.percentile(99) / 1e9 : 0);
      delay.reset();
    },
  });
}
