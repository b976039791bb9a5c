import { VERSION } from '../version.js';

/** `crypto-intel-mcp --help`: the commands, options and environment variables, for a person at a terminal. */
export const HELP = `crypto-intel-mcp ${VERSION}: an MCP server for crypto market intelligence (Token Metrics Data API)

Usage: crypto-intel-mcp [--help] [--version]
       crypto-intel-mcp --http [--port N] [--host ADDRESS]
       crypto-intel-mcp doctor
       crypto-intel-mcp keys
Without --http it speaks MCP over stdio: start it from an MCP client such as Claude Desktop or Cursor.
With --http it serves the MCP Streamable HTTP transport on /mcp (stateless), plus GET /healthz and GET /readyz,
for a team: several replicas can share one Redis (CRYPTO_INTEL_REDIS_URL).

Commands:
  doctor                         check your key(s) and the Token Metrics API: calls each endpoint the tools use
                                 once (one credit each), prints status, rows, schema drift, latency and the key
                                 fingerprint per endpoint; safe to paste into a bug report. Same environment as
                                 the server. Exit 0 healthy, 1 drift or a failing endpoint, 2 no key configured
  keys                           print each key's fingerprint, label, source, state, validity dates, credits this
                                 month and last audit event; no network, no credit. Exit 0 a key is usable, 1 none
                                 is usable now, 2 no key configured or the key file refused

Options:
  --http                         serve over HTTP instead of stdio
  --port N                       HTTP port (default CRYPTO_INTEL_HTTP_PORT or 3333; 0 picks a free one, logged on stderr)
  --host ADDRESS                 HTTP bind address (default CRYPTO_INTEL_HTTP_HOST or 127.0.0.1); any other
                                 than a loopback address needs access tokens
  -h, --help                     this text
  -v, --version                  the version

Environment:
  TOKEN_METRICS_API_KEY          one API key
  TOKEN_METRICS_API_KEYS         several keys, comma-separated, tried in order; label:key names one
  TOKEN_METRICS_API_KEY_FILE     file with one key per line (then label=, expires=, not-before=), re-read when it
                                 changes; refused when group or others can read it
  CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE  1: use a key file that group or others can read (default 0: refuse it)
  CRYPTO_INTEL_AUDIT_LOG         key events file (JSON lines), or "off" (default: audit.log in the cache dir)
  TOKEN_METRICS_BASE_URL         upstream base URL (default https://api.tokenmetrics.com/v2)
  CRYPTO_INTEL_CACHE_DIR         persistent cache directory, or "off" (default: the user cache dir)
  CRYPTO_INTEL_LOG_LEVEL         error | warn | info | debug (default info; logs go to stderr)
  CRYPTO_INTEL_CACHE_TTLS        per-endpoint TTL overrides in seconds, e.g. price=30,grades=600
  CRYPTO_INTEL_STALE_MAX_AGE_S   oldest cached answer served when the upstream fails (default 86400)
  CRYPTO_INTEL_BATCH_WINDOW_MS   pause (ms) that closes a batch gathered behind one in flight (default 20; a lone call never waits)
  CRYPTO_INTEL_CACHE_MAX_ENTRIES in-memory cache entries (default 10000)
  CRYPTO_INTEL_TIMEOUT_MS        one upstream attempt's timeout (default 10000)
  CRYPTO_INTEL_DEADLINE_MS       a tool call's deadline, all its upstream requests included (default 25000)
  CRYPTO_INTEL_MAX_RETRIES       retries for 429/5xx/network errors (default 3)
  CRYPTO_INTEL_UPSTREAM_CONCURRENCY  upstream requests in flight at once (default 4; with Redis, across all replicas)
  CRYPTO_INTEL_MAX_BODY_BYTES    largest upstream answer read, in bytes (default 8388608, 8 MiB); a larger one is an error
  CRYPTO_INTEL_MONTHLY_CREDITS   your plan's monthly credits: get_usage and a log warning say when 80% and 95%
                                 are used (default: none)
  CRYPTO_INTEL_REDIS_URL         redis://[user:password@]host:port[/db]: cache tier, fetch locks and upstream
                                 budget shared by replicas (default: none, everything stays in process)
  CRYPTO_INTEL_REDIS_TIMEOUT_MS  how long a call waits for one Redis command before going on without it (default 150)
HTTP only (--http):
  CRYPTO_INTEL_HTTP_PORT         port (default 3333)
  CRYPTO_INTEL_HTTP_HOST         bind address (default 127.0.0.1)
  CRYPTO_INTEL_HTTP_TOKENS       bearer tokens accepted on /mcp, comma-separated (16+ characters each)
  CRYPTO_INTEL_HTTP_TOKENS_FILE  file with one token per line (# comments allowed), read at start-up; refused
                                 when others can read it, unless CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE=1
  CRYPTO_INTEL_HTTP_ALLOWED_HOSTS  more host names accepted in Host/Origin headers, e.g. your proxy's public
                                 name; * accepts any (default: loopback names and the bind address)
  CRYPTO_INTEL_HTTP_RATE_PER_MIN tool calls (each element of a JSON-RPC batch) per minute per token, per replica;
                                 0 = no limit (default 600)
  CRYPTO_INTEL_HTTP_MAX_CONCURRENT_CALLS  uncached tool calls one token may have in flight; more get "busy, retry
                                 in N s" at once (default 8; 0 = no cap)
  CRYPTO_INTEL_HTTP_AUTH_FAILURES_PER_MIN  failed bearer attempts per client address before 429 (default 10; 0 = off)
`;
