#!/usr/bin/env node
/**
 * The hook CLI (`cds-hook`, `npm run hook -- …`): fires a CDS Hooks service's hook for a patient taken
 * from a bundle file, a folder of bundles or a FHIR server, and prints the cards. See {@link USAGE}.
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import cliProgress from 'cli-progress';
import type { Bundle } from 'fhir/r4.js';
import type { Card, DiscoveryResponse, DiscoveryService } from '../../src/cds-hooks.js';
import { type CliArgs, parseCliArgs, USAGE, UsageError } from './args.js';
import { callJson, type ClientDeps, KeyError, loadSigner, type Signer } from './client.js';
import {
  buildContext,
  bundleSource,
  callService,
  feedbackItems,
  type HookOptions,
  InputError,
  type PatientSource,
} from './hook.js';
import { latencyStats, renderCards, renderSummary, type RunSummary } from './render.js';
import { invokedDirectly } from '../usage.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stdoutIsTty: boolean;
  /** Where the progress bar is drawn; none (or not a terminal) gives a line per 10 patients. */
  progressTty?: NodeJS.WritableStream | undefined;
}

interface Ctx {
  args: CliArgs;
  io: CliIo;
  deps: ClientDeps;
  signer: Signer | undefined;
  service: DiscoveryService;
  serviceUrl: string;
  options: HookOptions;
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new InputError(`${what} ${path} is not JSON`);
  }
}

/** Reads the discovery document and picks the service; unknown service → UsageError. */
async function discover(
  args: CliArgs,
  signer: Signer | undefined,
  deps: ClientDeps,
): Promise<DiscoveryService> {
  const reply = await callJson(args.discoveryUrl, undefined, signer, deps);
  if (reply.status !== 200) throw new Error(`discovery ${args.discoveryUrl} answered ${reply.status}`);
  const services = (reply.body as DiscoveryResponse).services ?? [];
  const service = services.find((s) => s.id === args.serviceId);
  if (!service) {
    throw new UsageError(
      `unknown service "${args.serviceId}" at ${args.discoveryUrl} (services: ${services.map((s) => s.id).join(', ') || 'none'})`,
    );
  }
  return service;
}

/** Calls the service for one patient, prints, sends feedback; false when a call failed. */
async function onePatient(ctx: Ctx, source: PatientSource, label: string, summary: RunSummary | undefined) {
  const { io, deps } = ctx;
  const warn = (text: string) => io.stderr(`${label}: ${text}\n`);
  const result = await callService(ctx.serviceUrl, ctx.service, source, ctx.options, ctx.signer, deps, warn);
  let ok = result.status === 200;
  if (!ok) warn(`the service answered ${result.status}: ${JSON.stringify(result.error)}`);
  let feedback: unknown;
  if (ok && ctx.args.feedback && result.cards.length > 0) {
    const items = feedbackItems(result.cards, ctx.args.feedback, deps.now());
    const reply = await callJson(`${ctx.serviceUrl}/feedback`, { feedback: items }, ctx.signer, deps);
    feedback = { status: reply.status, body: reply.body };
    if (reply.status !== 200) {
      ok = false;
      warn(`feedback answered ${reply.status}: ${JSON.stringify(reply.body)}`);
    }
  }
  if (summary) {
    record(summary, ctx.service.id, result.status, result.ms, result.cards);
    const status = (feedback as { status: number } | undefined)?.status;
    if (status !== undefined && status !== 200) {
      summary.errors[`feedback ${status}`] = (summary.errors[`feedback ${status}`] ?? 0) + 1;
    }
  } else if (ctx.args.json) {
    io.stdout(
      `${JSON.stringify({ service: ctx.service.id, patient: source.patientId, status: result.status, latencyMs: Math.round(result.ms), cards: result.cards, ...(feedback ? { feedback } : {}) }, null, 2)}\n`,
    );
  } else {
    if (ok || result.status === 200)
      io.stdout(renderCards(`${ctx.service.id} · ${label}`, result.cards, io.stdoutIsTty));
    if (feedback)
      io.stdout(
        `feedback: ${(feedback as { status: number }).status} ${JSON.stringify((feedback as { body: unknown }).body)}\n`,
      );
  }
  return ok;
}

const latencies = new WeakMap<RunSummary, number[]>();

function record(summary: RunSummary, serviceId: string, status: number, ms: number, cards: Card[]) {
  summary.patients++;
  if (status !== 200) summary.errors[String(status)] = (summary.errors[String(status)] ?? 0) + 1;
  else latencies.get(summary)!.push(ms);
  for (const card of cards) {
    const byIndicator = (summary.cards[serviceId] ??= {});
    byIndicator[card.indicator] = (byIndicator[card.indicator] ?? 0) + 1;
  }
}

async function folder(ctx: Ctx, path: string): Promise<boolean> {
  let files: string[];
  try {
    files = (await readdir(path)).filter((f) => f.endsWith('.json')).sort();
  } catch (error) {
    throw new InputError(`cannot read folder ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (files.length === 0) throw new InputError(`no *.json bundle in ${path}`);
  const summary: RunSummary = { patients: 0, cards: {}, errors: {}, latencyMs: null };
  latencies.set(summary, []);
  const bar = ctx.io.progressTty
    ? new cliProgress.SingleBar(
        { stream: ctx.io.progressTty, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(files.length, 0);
  let ok = true;
  for (const [index, file] of files.entries()) {
    try {
      const source = bundleSource((await readJson(join(path, file), 'bundle')) as Bundle);
      ok = (await onePatient(ctx, source, file, summary)) && ok;
    } catch (error) {
      if (!(error instanceof InputError) && !(error instanceof TypeError)) throw error;
      ok = false;
      summary.patients++;
      const kind = error instanceof InputError ? 'input' : 'network';
      summary.errors[kind] = (summary.errors[kind] ?? 0) + 1;
      ctx.io.stderr(`${file}: ${error.message}\n`);
    }
    if (bar) bar.increment();
    else if ((index + 1) % 10 === 0 || index + 1 === files.length) {
      ctx.io.stderr(`${index + 1}/${files.length} patients\n`);
    }
  }
  bar?.stop();
  summary.latencyMs = latencyStats(latencies.get(summary)!);
  ctx.io.stdout(
    ctx.args.json
      ? `${JSON.stringify({ service: ctx.service.id, summary }, null, 2)}\n`
      : renderSummary(summary),
  );
  return ok;
}

async function sourceOf(args: CliArgs): Promise<PatientSource> {
  const input = args.input;
  if (input.kind === 'server')
    return { kind: 'server', patientId: input.patient, url: input.url, token: input.token };
  return bundleSource((await readJson(input.path, 'bundle')) as Bundle);
}

async function execute(args: CliArgs, io: CliIo, deps: ClientDeps): Promise<number> {
  const signer = args.key
    ? await loadSigner(args.key.path, args.key.alg, args.key.iss, args.key.kid)
    : undefined;
  const draftOrders = args.draftOrders
    ? ((await readJson(args.draftOrders, 'draft orders')) as Bundle)
    : undefined;
  const options: HookOptions = {
    userId: args.userId,
    encounterId: args.encounterId,
    draftOrders,
    select: args.select,
    prefetch: args.prefetch,
  };
  const service = await discover(args, signer, deps);
  buildContext(service.hook, 'check', options); // what the hook needs, before any patient is read
  const ctx: Ctx = {
    args,
    io,
    deps,
    signer,
    service,
    serviceUrl: `${args.discoveryUrl}/${encodeURIComponent(service.id)}`,
    options,
  };
  if (args.input.kind === 'bundles') return (await folder(ctx, args.input.path)) ? 0 : 1;
  const source = await sourceOf(args);
  return (await onePatient(
    ctx,
    source,
    args.input.kind === 'server' ? `Patient/${source.patientId}` : args.input.path,
    undefined,
  ))
    ? 0
    : 1;
}

/** Runs the CLI; returns the exit code (0 ok, 1 a call failed, 2 usage error). */
export async function run(argv: readonly string[], io: CliIo, deps: ClientDeps): Promise<number> {
  const usage = (message: string) => {
    io.stderr(`cds-hook: ${message}\n`);
    return 2;
  };
  try {
    const parsed = parseCliArgs(argv);
    if (parsed.kind === 'help') {
      io.stdout(USAGE);
      return 0;
    }
    return await execute(parsed.args, io, deps);
  } catch (error) {
    if (error instanceof UsageError) return usage(`${error.message}\n\n${USAGE}`);
    if (error instanceof KeyError || error instanceof InputError) return usage(error.message);
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    io.stderr(`cds-hook: ${(error as Error).message}${cause ? ` (${cause})` : ''}\n`);
    return 1;
  }
}

if (invokedDirectly(import.meta.url)) {
  process.exitCode = await run(
    process.argv.slice(2),
    {
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
      stdoutIsTty: process.stdout.isTTY === true,
      progressTty: process.stderr.isTTY === true ? process.stderr : undefined,
    },
    { fetch: globalThis.fetch, now: () => new Date(), uuid: randomUUID, clockMs: () => performance.now() },
  );
}
