/** Writes src/config/sidecar-config.schema.json from the zod schema (run by `npx projen schema`). */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { sidecarConfigJsonSchema } from '../src/config/json-schema';

const file = path.resolve(__dirname, '../src/config/sidecar-config.schema.json');
writeFileSync(file, JSON.stringify(sidecarConfigJsonSchema(), null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), file)}`);
