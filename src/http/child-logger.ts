/**
 * Request child loggers made only when they write (Fastify's `childLoggerFactory`): see DeferredChild.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, LogFn } from 'pino';

/** A log method's arguments, as pino takes them (merging object or message first). */
type LogArgs = Parameters<LogFn>;

/** What a deferred child needs of the pino root: its level values and its current level. */
interface LevelSource {
  levels: { values: Record<string, number>; labels: Record<number, string> };
  levelVal: number;
}

/**
 * A child logger that is only created when it has a line to write. Fastify makes a child logger per
 * request (its request id), client authentication another (issuer, tenant, token id) and the pipeline a
 * third (service, hookInstance): three pino children per call, each serialising its bindings and copying
 * the parent's state, about 40 µs a call, while at the usual `warn` level most calls write nothing. A
 * deferred child decides from the level it inherited whether a method writes; the first one that does
 * creates the pino children it stands for, parent first, with the same bindings in the same order, so
 * every line is the one the eager children wrote (request id included).
 */
class DeferredChild implements FastifyBaseLogger {
  private real: FastifyBaseLogger | undefined;
  private readonly parent: FastifyBaseLogger | DeferredChild;
  private readonly childBindings: Bindings;
  private readonly source: LevelSource;
  /** The level the child has (a pino child takes its parent's when created). */
  private levelValue: number;

  constructor(
    parent: FastifyBaseLogger | DeferredChild,
    childBindings: Bindings,
    source: LevelSource,
    levelValue: number,
  ) {
    this.parent = parent;
    this.childBindings = childBindings;
    this.source = source;
    this.levelValue = levelValue;
  }

  /** The pino child this stands for, created on first use. */
  private logger(): FastifyBaseLogger {
    if (this.real === undefined) {
      const parent = this.parent instanceof DeferredChild ? this.parent.logger() : this.parent;
      const real = parent.child(this.childBindings);
      // Had the parent's level changed since, the eager child would still have the level of its time.
      const label = this.source.levels.labels[this.levelValue];
      if (label !== undefined && real.level !== label) real.level = label;
      this.real = real;
    }
    return this.real;
  }

  private enabled(level: string): boolean {
    return (this.source.levels.values[level] ?? Infinity) >= this.levelValue;
  }

  get level(): string {
    return this.real?.level ?? this.source.levels.labels[this.levelValue] ?? 'silent';
  }

  set level(level: string) {
    const real = this.logger();
    real.level = level;
    this.levelValue = (real as unknown as LevelSource).levelVal;
  }

  fatal(...args: LogArgs): void {
    if (this.enabled('fatal')) this.logger().fatal(...args);
  }
  error(...args: LogArgs): void {
    if (this.enabled('error')) this.logger().error(...args);
  }
  warn(...args: LogArgs): void {
    if (this.enabled('warn')) this.logger().warn(...args);
  }
  info(...args: LogArgs): void {
    if (this.enabled('info')) this.logger().info(...args);
  }
  debug(...args: LogArgs): void {
    if (this.enabled('debug')) this.logger().debug(...args);
  }
  trace(...args: LogArgs): void {
    if (this.enabled('trace')) this.logger().trace(...args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    if (options !== undefined && Object.keys(options).length > 0)
      return this.logger().child(bindings, options);
    return new DeferredChild(this, bindings, this.source, this.levelValue);
  }
}

/**
 * Fastify's `childLoggerFactory`: the request's child logger is deferred (see {@link DeferredChild}).
 * A route with its own level or serializers gets pino's child at once, as Fastify made it.
 */
export function deferredChildLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  if (Object.keys(options).length > 0) return logger.child(bindings, options);
  const source = logger as unknown as LevelSource;
  return new DeferredChild(logger, bindings, source, source.levelVal);
}
