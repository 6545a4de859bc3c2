import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config.ts';

/**
 * The Dockerfile and the Kubernetes example cannot be built or applied on the CI machines (no
 * container engine, no cluster): these checks catch what rots silently — a path the image copies
 * that moved, a manifest that no longer parses, a probe or setting the server does not have.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const K8S = path.join(ROOT, 'deploy/k8s');

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function dockerInstructions(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

type Manifest = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function manifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(K8S).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8'))) {
      expect(doc.errors, `${file}: ${doc.errors.join('; ')}`).toEqual([]);
      const value = doc.toJS() as Manifest | null;
      if (value) out.push({ ...value, __file: file });
    }
  }
  return out;
}

describe('Dockerfile', () => {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerInstructions(text);

  it('copies only paths that exist in the repository', () => {
    const copies = instructions.filter((i) => i.op === 'COPY' && !i.args.includes('--from='));
    expect(copies.length).toBeGreaterThan(3);
    for (const copy of copies) {
      const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) expect(existsSync(path.join(ROOT, source)), `COPY ${source}`).toBe(true);
    }
  });

  it('has build and runtime stages, runs as a non-root user with a data volume and a health check', () => {
    const stages = instructions.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+AS\s+/i)[1]);
    expect(stages).toEqual(['build', 'deps', 'runtime']);
    const runtime = instructions.slice(instructions.findIndex((i) => i.op === 'FROM' && /AS runtime$/i.test(i.args)));
    expect(runtime.find((i) => i.op === 'USER')?.args).toBe('node');
    expect(runtime.find((i) => i.op === 'VOLUME')?.args).toContain('/data');
    expect(runtime.find((i) => i.op === 'HEALTHCHECK')?.args).toContain('/healthz');
    expect(text).toContain('npm ci --omit=dev');
    const entrypoint = JSON.parse(runtime.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    expect(existsSync(path.join(ROOT, entrypoint[1]!))).toBe(true);
  });

  it('sets only settings the server reads', () => {
    const env = instructions.filter((i) => i.op === 'ENV').flatMap((i) => [...i.args.matchAll(/(TIXIAN_[A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    expect(Object.fromEntries(env)).toEqual({ TIXIAN_HOST: '0.0.0.0', TIXIAN_PORT: '8080', TIXIAN_DATA_DIR: '/data' });
    expect(loadConfig({}, Object.fromEntries(env))).toMatchObject({ host: '0.0.0.0', port: 8080, dataDir: '/data' });
  });

  it('keeps installed modules, data and keys out of the build context', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const entry of ['**/node_modules', 'data', '**/master.key', '.git']) expect(ignored).toContain(entry);
  });
});

describe('deploy/k8s', () => {
  const docs = manifests();
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
  const deployment = (name: string) => byKind('Deployment').find((d) => d.metadata.name === name)!;

  it('parses into a Secret, two Deployments and a Service, all listed in the kustomization', () => {
    expect(docs.map((d) => `${d.kind}/${d.metadata?.name ?? ''}`).sort()).toEqual(
      ['Deployment/tixian-api', 'Deployment/tixian-worker', 'Kustomization/', 'Secret/tixian', 'Service/tixian-api'].sort(),
    );
    const kustomization = byKind('Kustomization')[0]!;
    const files = new Set(docs.map((d) => d.__file as string));
    files.delete('kustomization.yaml');
    expect(new Set(kustomization.resources)).toEqual(files);
  });

  it('runs the API and the workers in their own roles, live on /healthz and ready on /readyz', () => {
    const api = deployment('tixian-api').spec.template.spec.containers[0];
    const worker = deployment('tixian-worker').spec.template.spec.containers[0];
    expect(api.args).toEqual(['serve', '--role', 'api', '--workers', '1']);
    expect(worker.args).toEqual(['serve', '--role', 'worker', '--workers', '1']);
    for (const c of [api, worker]) {
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.ports).toEqual([{ name: 'http', containerPort: 8080 }]);
      expect(c.envFrom).toEqual([{ secretRef: { name: 'tixian' } }]);
      expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
      // The environment the manifest sets is one the server accepts.
      const env = Object.fromEntries((c.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
      expect(() => loadConfig({}, env)).not.toThrow();
      expect(loadConfig({}, env)).toMatchObject({ host: '0.0.0.0', port: 8080 });
    }
    // The API sits behind a TLS-terminating Ingress: it believes X-Forwarded-* from private addresses only.
    const apiEnv = Object.fromEntries((api.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    expect(loadConfig({}, apiEnv).trustProxy).toEqual(['uniquelocal']);
  });

  it('gives the Service the API pods, and the Secret both shared settings in a form the server accepts', () => {
    const service = byKind('Service')[0]!;
    expect(service.spec.selector).toEqual(deployment('tixian-api').spec.selector.matchLabels);
    expect(service.spec.ports[0].targetPort).toBe('http');
    for (const d of byKind('Deployment')) expect(d.spec.selector.matchLabels).toEqual(d.spec.template.metadata.labels);
    const secret = byKind('Secret')[0]!;
    expect(Object.keys(secret.stringData).sort()).toEqual(['TIXIAN_DATABASE_URL', 'TIXIAN_MASTER_KEY']);
    // The master key is a placeholder the server refuses: applied unchanged, nothing starts (an
    // all-zero key would have been accepted, and every secret sealed with a published key).
    expect(() => loadConfig({}, secret.stringData as Record<string, string>)).toThrow(/TIXIAN_MASTER_KEY must be 64 hex characters/);
    const key = 'ab'.repeat(32);
    expect(loadConfig({}, { ...secret.stringData, TIXIAN_MASTER_KEY: key } as Record<string, string>)).toMatchObject({ masterKeyHex: key, databaseUrl: expect.stringMatching(/^postgres:\/\//) });
  });
});
