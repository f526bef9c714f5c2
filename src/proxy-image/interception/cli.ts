/**
 * typemesh-init: the entrypoint of the sidecar image's init container. It generates the
 * iptables script for its flags and runs it with `sh -e` (or prints it with --dry-run).
 * Exit codes: 0 done, 1 the script failed, 2 bad flags.
 */
import { spawnSync } from 'node:child_process';
import { INTERCEPTION_USAGE, parseInterceptionArgs } from './args';
import { InterceptionOptionsError } from './options';
import { generateInterceptionScript } from './script';

// The constructs derive the init container's arguments from a sidecar config with this.
export { interceptionArgsFor } from './args';

/** Runs typemesh-init with these arguments and returns its exit code. */
export function runInterceptionCli(argv: readonly string[]): number {
  let script: string;
  let dryRun: boolean;
  try {
    const command = parseInterceptionArgs(argv);
    if (command.help) {
      process.stdout.write(`${INTERCEPTION_USAGE}\n`);
      return 0;
    }
    dryRun = command.dryRun;
    script = generateInterceptionScript(command.options, { clean: command.clean, iptablesBackend: command.iptablesBackend });
  } catch (e) {
    if (e instanceof InterceptionOptionsError) {
      process.stderr.write(`typemesh-init: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (dryRun) {
    process.stdout.write(script);
    return 0;
  }
  // The script goes to sh on stdin: nothing is written to the (often read-only) file system.
  const result = spawnSync('sh', ['-e', '-s'], { input: script, stdio: ['pipe', 'inherit', 'inherit'] });
  if (result.error) {
    process.stderr.write(`typemesh-init: cannot run sh: ${result.error.message}\n`);
    return 1;
  }
  if (result.status !== 0) {
    process.stderr.write(`typemesh-init: the iptables script failed (exit ${result.status ?? result.signal}); rerun with --dry-run to see it\n`);
    return 1;
  }
  return 0;
}

if (require.main === module) {
  process.exitCode = runInterceptionCli(process.argv.slice(2));
}
