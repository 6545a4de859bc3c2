import pino, { type ChildLoggerOptions, type DestinationStream, type Logger } from 'pino';
import type { FastifyBaseLogger } from 'fastify';

/**
 * Fields that must never reach a log line: credentials (secret keys, the Authorization header,
 * request and webhook signatures) and payee data (card/account numbers, names, WeChat open ids).
 * Request and webhook bodies are never logged whole; these paths catch them wherever an object
 * holding one is logged anyway (an error's properties, a channel answer, headers).
 */
const SENSITIVE_KEYS = [
  'authorization',
  'pingplusplus-signature',
  'x-pingplusplus-signature',
  'secret_key',
  'secret_key_test',
  'secret_key_live',
  'key_test',
  'key_live',
  'master_key',
  'account',
  'card_number',
  'name',
  'user_name',
  'open_id',
  'openid',
  'recipient',
  // Node's clientError (a malformed or oversized request head) carries the raw bytes, headers included.
  'rawPacket',
  // The console: operator passwords, session cookies and CSRF tokens.
  'password',
  'password_hash',
  'cookie',
  'set-cookie',
  'x-csrf-token',
  'csrf_token',
] as const;

/** How deep below the top of a log object a sensitive key is still found (pino redact has no `**`). */
const REDACT_DEPTH = 4;

export const REDACTED = '[redacted]';

/** pino `redact` paths: every sensitive key at the top and up to REDACT_DEPTH levels below. */
export function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of SENSITIVE_KEYS) {
    const leaf = /^[A-Za-z_]+$/.test(key) ? `.${key}` : `["${key}"]`;
    for (let depth = 0; depth <= REDACT_DEPTH; depth++) {
      const prefix = Array.from({ length: depth }, () => '*').join('.');
      paths.push(depth === 0 ? leaf.replace(/^\./, '') : prefix + leaf);
    }
  }
  return paths;
}

/**
 * The last line of defence: a secret key inside any text of a line (an error message, a stack, a
 * URL) is cut to its mode before the line is written. Keys are `sk_test_`/`sk_live_` + base62.
 */
const SECRET_KEY_PATTERN = /\b(sk_(?:test|live)_)[A-Za-z0-9]+/g;
export const scrubSecretKeys = (line: string) => line.replace(SECRET_KEY_PATTERN, '$1***');

/** Standard output takes log lines in writes of at least this many bytes (~12 access lines)... */
export const LOG_BUFFER_BYTES = 3072;
/**
 * ... and of whole lines, never more than this in one write(2) but for a single longer line:
 * PIPE_BUF on Linux, the most a pipe takes whole. The processes of `--workers N` share one standard
 * output, and two writes of theirs that a pipe took in pieces could interleave mid-line.
 */
const LOG_WRITE_MAX_BYTES = 4096;
/** ... and whatever is waiting at least this often, so a quiet server's lines are never held back long. */
export const LOG_FLUSH_MS = 100;
/** Lines at this level and above (warn, error, fatal) are written at once, with what waits before them. */
const FLUSH_LEVEL = 40;

/** Standard output as pino writes to it, and a flush that never throws. */
type Stdout = ReturnType<typeof pino.destination> & { flushNow: () => void };
let stdout: Stdout | null = null;

/**
 * The process's standard output for log lines, shared by its loggers. An access line per request
 * was a write(2) each: ~2–3% of the server's CPU under withdrawal creates (issue #12), and a
 * pipe's reader woken each time. Lines now wait for LOG_BUFFER_BYTES or LOG_FLUSH_MS; a warning
 * or an error goes out at once, and the rest when the process exits. What a SIGKILL can take is
 * the last ≤ 100 ms of info lines; the database, not the log, is the record of money.
 */
function stdoutDestination(flushMs: number): Stdout {
  if (stdout) return stdout;
  const dest = pino.destination({ dest: 1, minLength: LOG_BUFFER_BYTES, maxWrite: LOG_WRITE_MAX_BYTES, sync: true });
  const flush = () => {
    try {
      // flush(), which writes what waits (synchronously: the destination is sync), and not
      // flushSync(), which also fsyncs the descriptor. Standard output redirected to a file then
      // had the event loop wait for the disk every LOG_FLUSH_MS and after every warning (a failed
      // webhook try is one), stalling every request; the log is not the record of money. At most
      // one chunk waits between writes (a chunk is begun only past LOG_WRITE_MAX_BYTES, and
      // LOG_BUFFER_BYTES below that writes at once), so one flush writes it all.
      dest.flush();
    } catch {
      // Standard output closed (its reader gone): nothing is left to write the lines to.
    }
  };
  setInterval(flush, flushMs).unref();
  process.once('exit', flush);
  return (stdout = Object.assign(dest, { flushNow: flush }));
}

/**
 * The process logger: JSON lines, sensitive fields redacted. Tests pass a destination to read the
 * lines, or the flush period of standard output (the first logger on it sets it).
 */
export function createLogger(level: string, destination?: DestinationStream, stdoutFlushMs = LOG_FLUSH_MS): Logger {
  const options = {
    level,
    redact: { paths: redactPaths(), censor: REDACTED },
    hooks: { streamWrite: scrubSecretKeys },
  };
  if (destination) return pino(options, destination);
  const out = stdoutDestination(stdoutFlushMs);
  return pino(
    {
      ...options,
      hooks: {
        ...options.hooks,
        logMethod(this: Logger, args: Parameters<Logger['info']>, method: Logger['info'], level: number) {
          method.apply(this, args);
          if (level >= FLUSH_LEVEL) out.flushNow();
        },
      },
    },
    out,
  );
}

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type Bindings = Record<string, unknown>;

/**
 * A request's logger that becomes a pino child only when something is logged through it at an
 * enabled level. Fastify makes one child per request (`reqId` bound), and with redaction on, pino
 * runs every binding through the redactor: ~7% of a read's CPU for a logger that, at the default
 * level, is used only by the access line (which has its own, plugins/request-log.ts) and on errors.
 * The child, once made, is exactly what Fastify would have made: same bindings, same redaction.
 */
class LazyRequestLogger {
  #real: FastifyBaseLogger | null = null;

  constructor(
    private readonly parent: Logger,
    private readonly bindings: Bindings,
  ) {}

  #child(): FastifyBaseLogger {
    return (this.#real ??= this.parent.child(this.bindings));
  }

  #log(level: LevelName, args: unknown[]): void {
    const real = this.#real ?? (this.parent.isLevelEnabled(level) ? this.#child() : null);
    if (real) (real[level] as (...a: unknown[]) => void)(...args);
  }

  get level(): string {
    return this.#real ? this.#real.level : this.parent.level;
  }
  set level(level: string) {
    this.#child().level = level;
  }
  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#log('error', args);
  }
  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }
  info(...args: unknown[]): void {
    this.#log('info', args);
  }
  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }
  silent(): void {}
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#child().child(bindings, options);
  }
}

const isPino = (logger: FastifyBaseLogger): logger is FastifyBaseLogger & Logger =>
  typeof (logger as Partial<Logger>).isLevelEnabled === 'function';

/**
 * Fastify's `childLoggerFactory`: a lazy child (above) for a pino logger when the route asks for
 * nothing special; otherwise (a route's own level or serializers, another logger) the eager child.
 */
export function lazyChildLoggerFactory(logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  if (!isPino(logger) || Object.keys(options).length > 0) return logger.child(bindings, options);
  return new LazyRequestLogger(logger, bindings) as unknown as FastifyBaseLogger;
}

/**
 * A child of `logger` without key-based redaction, for lines whose every field is a primitive the
 * server composed itself (the access line): redaction paths can only match below an object, so
 * it would change nothing in them, yet pino runs every field through the wildcard redactor. The
 * secret-key scrub of the text (hooks.streamWrite) and the level still come from `logger`.
 */
export function unredactedChild(logger: FastifyBaseLogger): FastifyBaseLogger {
  return isPino(logger) ? logger.child({}, { redact: [] }) : logger;
}

/** Whether a line at `level` would be written (any logger; pino answers without building the line). */
export function isEnabled(logger: FastifyBaseLogger, level: LevelName): boolean {
  return isPino(logger) ? logger.isLevelEnabled(level) : logger.level !== 'silent';
}
