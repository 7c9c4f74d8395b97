// The environment of a JavaScript function, evaluated once per runtime before
// the function's module: `console` (to Herald's log, with the function's name
// and the invocation's request id), `process.env` (the function's
// Environment), and `__herald_invoke`, which Herald calls per invocation.
// Nothing reaches files or the network: QuickJS offers neither.
(function () {
  'use strict';
  const text = (a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return a.stack ? `${a.name}: ${a.message}\n${a.stack}` : `${a.name}: ${a.message}`;
    try { return JSON.stringify(a); } catch (e) { return String(a); }
  };
  const log = (level) => (...args) => __herald_log(level, args.map(text).join(' '));
  globalThis.console = {
    log: log('info'), info: log('info'), debug: log('debug'), trace: log('debug'),
    warn: log('warn'), error: log('error'),
  };
  globalThis.process = { env: JSON.parse(__herald_env), argv: [], platform: 'herald' };

  // `fetch`, only when the function opted in (HERALD_FETCH_ALLOW).
  if (typeof globalThis.__herald_fetch === 'function') {
    const hostFetch = globalThis.__herald_fetch;
    delete globalThis.__herald_fetch;
    globalThis.fetch = async (input, init = {}) => {
      const url = String(input && input.url ? input.url : input);
      const headers = {};
      const given = init.headers || {};
      for (const [k, v] of Array.isArray(given) ? given : Object.entries(given)) headers[String(k).toLowerCase()] = String(v);
      const body = init.body === undefined || init.body === null ? '' : String(init.body);
      const r = JSON.parse(hostFetch(url, String(init.method || 'GET').toUpperCase(), JSON.stringify(headers), body));
      if (r.error) throw new TypeError(`fetch failed: ${r.error}`);
      return {
        ok: r.status >= 200 && r.status < 300,
        status: r.status,
        url,
        headers: { get: (n) => (r.headers[String(n).toLowerCase()] ?? null), has: (n) => String(n).toLowerCase() in r.headers },
        text: async () => r.body,
        json: async () => JSON.parse(r.body),
      };
    };
  }

  // Lambda's error shape for Node.js: errorType, errorMessage, trace.
  const errorOf = (e) => {
    if (e instanceof InternalError && /out of memory/.test(e.message)) {
      return { errorType: 'Runtime.OutOfMemory', errorMessage: 'Runtime exited: out of memory', trace: [] };
    }
    if (e instanceof Error) {
      const trace = e.stack ? [`${e.name}: ${e.message}`, ...String(e.stack).split('\n').filter((l) => l.trim())] : [];
      return { errorType: e.name || 'Error', errorMessage: String(e.message), trace };
    }
    return { errorType: typeof e, errorMessage: String(e), trace: [] };
  };
  const answer = (out) => {
    try {
      return JSON.stringify({ ok: out === undefined ? null : out });
    } catch (e) {
      return JSON.stringify({ error: { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body: ${e.message}`, trace: [] } });
    }
  };

  // Called by Herald: run the handler on the event (JSON text) with the
  // context's fields (JSON text); settle with the answer (JSON text).
  globalThis.__herald_invoke = (eventJson, contextJson) => {
    const m = globalThis.__herald_module;
    const c = JSON.parse(contextJson);
    const fn = m[c.export] !== undefined ? m[c.export] : (m.default && m.default[c.export]);
    if (typeof fn !== 'function') {
      return Promise.resolve(JSON.stringify({ error: { errorType: 'Runtime.HandlerNotFound', errorMessage: `${c.handler} is undefined or not exported`, trace: [] } }));
    }
    const deadline = c.deadlineMs;
    const context = {
      functionName: c.functionName,
      functionVersion: c.functionVersion,
      invokedFunctionArn: c.invokedFunctionArn,
      memoryLimitInMB: c.memoryLimitInMB,
      awsRequestId: c.awsRequestId,
      logGroupName: `/aws/lambda/${c.functionName}`,
      logStreamName: 'herald',
      clientContext: c.clientContext,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    const event = JSON.parse(eventJson);
    // Callback-style handlers take three arguments.
    const run = fn.length >= 3
      ? new Promise((resolve, reject) => {
        const r = fn(event, context, (err, value) => (err ? reject(err) : resolve(value)));
        if (r && typeof r.then === 'function') r.then(resolve, reject);
      })
      : (() => {
        // Called at once, so an uncatchable interruption (the timeout)
        // reaches Herald directly.
        try { return Promise.resolve(fn(event, context)); } catch (e) { return Promise.reject(e); }
      })();
    return run.then(answer, (e) => JSON.stringify({ error: errorOf(e) }));
  };
})();
