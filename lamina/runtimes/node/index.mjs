// lamina's Node.js runtime client (nodejs20.x): runs a function inside an environment.
//
// Run as `node /var/runtime/node/index.mjs` with cwd /var/task. It speaks the Lambda
// Runtime API (2018-06-01) at http://$AWS_LAMBDA_RUNTIME_API, loads the handler named by
// _HANDLER and runs invocations, so that functions written for AWS Lambda's nodejs20.x
// runtime run unchanged. What user code can observe (handler resolution, callback and
// async semantics, the context object, console formats, error shapes and messages)
// follows AWS's runtime client, aws-lambda-ric 3.x; the transport is lamina's own.
//
// Environment: _HANDLER, AWS_LAMBDA_RUNTIME_API, LAMBDA_TASK_ROOT (default: cwd),
// AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
// AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME, AWS_LAMBDA_LOG_FORMAT (Text|JSON),
// AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA.
//
// Wire: one raw TCP socket (noDelay, keep-alive) and a minimal HTTP/1.1 client, because
// node's http module cannot put two requests in one write and costs more per request:
//   1. GET /runtime/invocation/next (no timeout: it long-polls);
//   2. after the handler, POST /runtime/invocation/{id}/response (or /error) *and* the
//      next GET in one socket write, then the 202 and the next event are read in order.
// Streaming handlers (awslambda.streamifyResponse) POST with chunked transfer and
// Lambda-Runtime-Function-Response-Mode: streaming; an error mid-stream goes in the
// trailers. Init errors go to /runtime/init/error (exit 129 after an uncaught exception,
// 128 after an unhandled rejection, as AWS). A 5xx answer to a post or a lost connection
// ends the process with status 1. Fatal posts (init error, error before exit) use a
// fresh connection, so they never queue behind a pending long poll.
//
// The socket is unref'd while a handler runs: "the event loop is empty" (beforeExit) then
// means the user's work is done, which is how callbackWaitsForEmptyEventLoop works.

import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import util from "node:util";

const require = createRequire(import.meta.url);

const NEXT_PATH = "/2018-06-01/runtime/invocation/next";
const INVOCATION_PATH = "/2018-06-01/runtime/invocation/";
const INIT_ERROR_PATH = "/2018-06-01/runtime/init/error";
const ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type";
const ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body";

// Shared with code that looks for them (AWS's runtime keeps these on the global object).
const REQUEST_ID_SYMBOL = Symbol.for("aws.lambda.runtime.requestId");
const TENANT_ID_SYMBOL = Symbol.for("aws.lambda.runtime.tenantId");
const BEFORE_EXIT_SYMBOL = Symbol.for("aws.lambda.beforeExit");
const HANDLER_STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const HANDLER_HIGHWATERMARK = Symbol.for("aws.lambda.runtime.handler.streaming.highWaterMark");
const STREAM_RESPONSE = "response";

// ------------------------------------------------------------------------------- errors

// AWS's runtime error classes: `name` is the dotted Lambda error type.
class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class MalformedStreamingHandler extends Error {}
class InvalidStreamingOperation extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const cls of [
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  MalformedStreamingHandler,
  InvalidStreamingOperation,
  UnhandledPromiseRejection,
]) {
  cls.prototype.name = `Runtime.${cls.name}`;
}

function isErrorLike(obj) {
  return (
    obj &&
    typeof obj.name === "string" &&
    typeof obj.message === "string" &&
    typeof obj.stack === "string" &&
    obj.name &&
    obj.message &&
    obj.stack
  );
}

/** The error body posted to the Runtime API: {errorType, errorMessage, trace} (AWS's shape). */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name?.replace(/\x7F/g, "%7F"),
        errorMessage: error.message?.replace(/\x7F/g, "%7F"),
        trace: error.stack.replace(/\x7F/g, "%7F").split("\n"),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch {
    return {
      errorType: "handled",
      errorMessage:
        "callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack",
    };
  }
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** `\t{"errorType":..,"errorMessage":..,"stack":[..]}`: how AWS's Text logs show an error. */
function toFormatted(error) {
  try {
    return "\t" + JSON.stringify(error, (_key, value) => withEnumerableProperties(value));
  } catch {
    return "\t" + JSON.stringify(toRapidResponse(error));
  }
}

function withEnumerableProperties(error) {
  if (!(error instanceof Error)) return error;
  const out = Object.assign(
    { errorType: error.name, errorMessage: error.message, code: error.code },
    error,
  );
  if (typeof error.stack === "string") out.stack = error.stack.split("\n");
  return out;
}

// -------------------------------------------------------------------------------- console

const LEVELS = {
  TRACE: { name: "TRACE", priority: 1 },
  DEBUG: { name: "DEBUG", priority: 2 },
  INFO: { name: "INFO", priority: 3 },
  WARN: { name: "WARN", priority: 4 },
  ERROR: { name: "ERROR", priority: 5 },
  FATAL: { name: "FATAL", priority: 6 },
};

function jsonErrorReplacer(_key, value) {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? "UnknownError",
        errorMessage: value.message,
        stackTrace: typeof value.stack === "string" ? value.stack.split("\n") : value.stack,
      },
      value,
    );
  }
  return value;
}

function formatJson(level, message, params) {
  const record = {
    timestamp: new Date().toISOString(),
    level: level.name,
    requestId: globalThis[REQUEST_ID_SYMBOL],
  };
  const tenantId = globalThis[TENANT_ID_SYMBOL];
  if (tenantId != null) record.tenantId = tenantId;
  if (params.length === 0) {
    record.message = message;
    try {
      return JSON.stringify(record, jsonErrorReplacer);
    } catch {
      record.message = util.format(record.message);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(message, ...params);
  for (const param of [message, ...params]) {
    if (param instanceof Error) {
      record.errorType = param?.constructor?.name ?? "UnknownError";
      record.errorMessage = param.message;
      record.stackTrace = typeof param.stack === "string" ? param.stack.split("\n") : [];
      break;
    }
  }
  return JSON.stringify(record);
}

/**
 * Replace console.* with AWS's formats. Text: `<ISO time>\t<requestId>\t<LEVEL>\t<message>`;
 * JSON: {timestamp, level, requestId, message, ...}. A record is one line: newlines inside
 * become CR, as AWS's stdout logger writes them. stdout on a pipe is synchronous on
 * Linux, so a line is in the pipe before the result is posted.
 * Returns the error logger used for "Invoke Error" / "Uncaught Exception" reports.
 */
function patchConsole() {
  const json = process.env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === "JSON";
  const write = json
    ? (level, message, params) => {
        process.stdout.write(formatJson(level, message, params).replace(/\n/g, "\r") + "\n");
      }
    : (level, message, params) => {
        const line = `${new Date().toISOString()}\t${globalThis[REQUEST_ID_SYMBOL]}\t${
          level.name
        }\t${util.format(message, ...params)}`;
        process.stdout.write(line.replace(/\n/g, "\r") + "\n");
      };
  const threshold = LEVELS[process.env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase()] ?? LEVELS.TRACE;
  const logger = (level) =>
    level.priority >= threshold.priority ? (message, ...params) => write(level, message, params) : () => {};
  console.trace = logger(LEVELS.TRACE);
  console.debug = logger(LEVELS.DEBUG);
  console.info = logger(LEVELS.INFO);
  console.log = console.info;
  console.warn = logger(LEVELS.WARN);
  console.error = logger(LEVELS.ERROR);
  console.fatal = (message, ...params) => write(LEVELS.FATAL, message, params);
  return json
    ? (_label, err) => console.error(intoError(err))
    : (label, err) => console.error(label, toFormatted(intoError(err)));
}

// ------------------------------------------------------------------------------- HTTP

/**
 * One keep-alive connection to the Runtime API with a minimal HTTP/1.1 client.
 * Requests are strings written as they are (callers may put two in one write); each
 * expected response is a callback in `pending`, called in order. The socket holds the
 * event loop open only while a response is awaited.
 */
class Connection {
  constructor(address, onFatal) {
    const colon = address.lastIndexOf(":");
    this.host = address.slice(0, colon).replace(/^\[|\]$/g, "");
    this.port = Number(address.slice(colon + 1));
    this.address = address;
    this.onFatal = onFatal;
    this.sock = null;
    this.chunks = [];
    this.size = 0;
    this.need = 0;
    this.pending = [];
  }

  connect() {
    const sock = net.connect({ host: this.host, port: this.port, noDelay: true });
    sock.setKeepAlive(true);
    sock.on("data", (chunk) => this.onData(chunk));
    sock.on("error", (err) => this.lost(`lost the Runtime API connection: ${err.message}`));
    sock.on("close", () => {
      if (this.sock === sock) this.sock = null;
      if (this.pending.length) this.lost("the Runtime API closed the connection");
    });
    this.sock = sock;
    this.chunks = [];
    this.size = 0;
    this.need = 0;
    return sock;
  }

  lost(message) {
    const onFatal = this.onFatal;
    this.pending = [];
    if (onFatal) {
      this.onFatal = null;
      onFatal(message);
    }
  }

  /** Write `data` and expect one response per callback, in order. */
  send(data, ...callbacks) {
    const sock = this.sock ?? this.connect();
    for (const cb of callbacks) this.pending.push(cb);
    sock.ref();
    sock.write(data);
  }

  onData(chunk) {
    // Large bodies arrive in many chunks: gather them and concatenate once, when enough
    // bytes for the response being parsed are there (`need`), not once per chunk.
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size < this.need) return;
    let buf = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.need = 0;
    for (;;) {
      const response = this.parse(buf);
      if (response === null) break;
      buf = response.rest;
      const cb = this.pending.shift();
      if (this.pending.length === 0 && this.sock) this.sock.unref();
      if (cb) cb(response);
      if (buf.length === 0) break;
    }
    if (buf.length) this.chunks.push(buf);
    this.size = buf.length;
  }

  /** Parse one response from `buf`: {status, headers (lower-case names), body, rest} or null. */
  parse(buf) {
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const lines = buf.toString("latin1", 0, end).split("\r\n");
    const status = Number(lines[0].slice(9, 12));
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const start = end + 4;
    if (status < 200) return this.parse(buf.subarray(start)); // interim response
    const length = headers["content-length"];
    if (length !== undefined) {
      const stop = start + Number(length);
      if (buf.length < stop) {
        this.need = stop;
        return null;
      }
      return { status, headers, body: buf.subarray(start, stop), rest: buf.subarray(stop) };
    }
    if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
      const parts = [];
      let pos = start;
      for (;;) {
        const eol = buf.indexOf("\r\n", pos);
        if (eol < 0) return null;
        const size = parseInt(buf.toString("latin1", pos, eol), 16);
        if (size === 0) {
          const term = buf.indexOf("\r\n\r\n", pos);
          if (term < 0) return null;
          return { status, headers, body: Buffer.concat(parts), rest: buf.subarray(term + 4) };
        }
        if (buf.length < eol + 2 + size + 2) return null;
        parts.push(buf.subarray(eol + 2, eol + 2 + size));
        pos = eol + 2 + size + 2;
      }
    }
    return { status, headers, body: buf.subarray(0, 0), rest: buf.subarray(start) };
  }
}

function request(method, path, host, body = "", headers = "") {
  if (method === "GET") return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${headers}\r\n`;
  return (
    `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${headers}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

function headerValue(value) {
  return String(value).replace(/[^\x20-\x7e]/g, "");
}

/** POST once on a fresh connection and resolve with the status (0 if it failed). */
function postFatal(address, path, body, headers) {
  return new Promise((resolve) => {
    const conn = new Connection(address, () => resolve(0));
    const data = request("POST", path, address, body, "Content-Type: application/json\r\n" + headers);
    conn.send(data, (response) => {
      conn.sock?.destroy();
      resolve(response.status);
    });
  });
}

// ------------------------------------------------------------------------ handler loading

const FUNCTION_EXPR = /^([^.]*)\.(.*)$/;

function moduleRootAndHandler(fullHandler) {
  const handler = path.basename(fullHandler);
  return [fullHandler.substring(0, fullHandler.indexOf(handler)), handler];
}

function splitHandler(handler) {
  const match = handler.match(FUNCTION_EXPR);
  if (!match || match.length !== 3) throw new MalformedHandlerName("Bad handler");
  return [match[1], match[2]];
}

function hasTypeModule(folder) {
  if (folder.endsWith("/node_modules")) return false;
  const packageJson = path.join(folder, "/package.json");
  if (fs.existsSync(packageJson)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(packageJson));
      if (pkg) return pkg.type === "module";
    } catch (e) {
      console.warn(
        `${packageJson} cannot be read, it will be ignored for ES module detection purposes.`,
        e,
      );
      return false;
    }
  }
  if (folder === "/") return false;
  return hasTypeModule(path.resolve(folder, ".."));
}

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  return fs.existsSync(file) ? await import(pathToFileURL(file).href) : undefined;
}

/** Find the module as AWS's nodejs20.x runtime does: file, .js (CJS or ESM), .mjs, .cjs, node. */
async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = requireIfExists(base);
  if (extensionless) return extensionless;
  const esm = fs.existsSync(base + ".js") && hasTypeModule(path.dirname(base + ".js"));
  if (!esm) {
    const cjs = requireIfExists(base + ".js");
    if (cjs) return cjs;
  }
  const loaded =
    (esm && (await importIfExists(base + ".js"))) ||
    (await importIfExists(base + ".mjs")) ||
    requireIfExists(base + ".cjs");
  if (loaded) return loaded;
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes("..")) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const [moduleRoot, moduleAndHandler] = moduleRootAndHandler(fullHandler);
  const [moduleName, handlerPath] = splitHandler(moduleAndHandler);
  let userModule;
  try {
    userModule = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e.code === "MODULE_NOT_FOUND") throw new ImportModuleError(e);
    throw e;
  }
  const handler = handlerPath.split(".").reduce((obj, key) => obj && obj[key], userModule);
  if (!handler) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof handler !== "function") throw new HandlerNotFound(`${fullHandler} is not a function`);
  return handler;
}

function streamingMode(handler) {
  const mode = handler[HANDLER_STREAMING];
  if (mode === undefined || mode === null || mode === false) return false;
  if (mode === STREAM_RESPONSE) return STREAM_RESPONSE;
  throw new MalformedStreamingHandler("Only response streaming is supported.");
}

// ------------------------------------------------------------------------ response stream

const HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response";

/** awslambda.HttpResponseStream: a status/headers prelude, 8 NUL bytes, then the body. */
class HttpResponseStream {
  static from(stream, prelude) {
    stream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
    const metadata = JSON.stringify(prelude);
    stream._onBeforeFirstWrite = (write) => {
      write(metadata);
      write(new Uint8Array(8));
    };
    return stream;
  }
}

/**
 * The `responseStream` of a streaming handler: a Writable whose chunks go to the socket as
 * HTTP chunks of the POST .../response. Headers wait for the first write (setContentType
 * stays possible until then); the end (or a failure, in trailers) is written together
 * with the next GET.
 */
class ResponseStream extends Writable {
  constructor(runtime, requestId, highWaterMark) {
    super(highWaterMark ? { highWaterMark } : {});
    this.runtime = runtime;
    this.requestId = requestId;
    this.contentType = "application/octet-stream";
    this.headersSent = false;
    this.bodyDone = false;
    this._onBeforeFirstWrite = null;
  }

  setContentType(contentType) {
    if (this.headersSent) throw new InvalidStreamingOperation("Cannot set content-type, too late.");
    this.contentType = contentType;
  }

  sendHeaders() {
    if (this.headersSent) return "";
    this.headersSent = true;
    const conn = this.runtime.conn;
    return (
      `POST ${INVOCATION_PATH}${encodeURIComponent(this.requestId)}/response HTTP/1.1\r\nHost: ${conn.address}\r\n` +
      `Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n` +
      `Trailer: ${ERROR_TYPE_HEADER}, ${ERROR_BODY_TRAILER}\r\n` +
      `Content-Type: ${headerValue(this.contentType)}\r\n\r\n`
    );
  }

  write(chunk, encoding, callback) {
    if (
      typeof chunk !== "string" &&
      !Buffer.isBuffer(chunk) &&
      chunk?.constructor !== Uint8Array
    ) {
      chunk = JSON.stringify(chunk);
    }
    if (!this.headersSent && typeof this._onBeforeFirstWrite === "function") {
      const before = this._onBeforeFirstWrite;
      this._onBeforeFirstWrite = null;
      before((c) => super.write(c));
    }
    return super.write(chunk, encoding, callback);
  }

  _write(chunk, encoding, callback) {
    const data = typeof chunk === "string" ? Buffer.from(chunk, encoding) : chunk;
    const head = this.sendHeaders();
    const sock = this.runtime.conn.sock ?? this.runtime.conn.connect();
    if (data.length === 0) {
      if (head) sock.write(head);
      callback();
      return;
    }
    sock.cork(); // one writev for the chunk header, data and trailer
    sock.write(head + data.length.toString(16) + "\r\n");
    sock.write(data);
    sock.write("\r\n", callback);
    sock.uncork();
  }

  _final(callback) {
    this.finish(null);
    callback();
  }

  /** Close the body (with the error in trailers if `error`) and ask for the next event. */
  finish(error) {
    if (this.bodyDone) return;
    this.bodyDone = true;
    let tail = this.sendHeaders() + "0\r\n";
    if (error) {
      const body = toRapidResponse(error);
      tail +=
        `${ERROR_TYPE_HEADER}: ${headerValue(body.errorType)}\r\n` +
        `${ERROR_BODY_TRAILER}: ${Buffer.from(JSON.stringify(body)).toString("base64")}\r\n`;
    }
    this.runtime.postThenNext(tail + "\r\n");
  }
}

// ------------------------------------------------------------------------------ runtime

class Runtime {
  constructor(address, handler, logError) {
    this.conn = new Connection(address, (message) => this.fatal(message));
    this.handler = handler;
    this.streaming = streamingMode(handler);
    this.highWaterMark = parseInt(handler[HANDLER_HIGHWATERMARK]) || undefined;
    this.logError = logError;
    this.nextRequest = request("GET", NEXT_PATH, address);
    this.requestId = undefined;
    this.exiting = false;
    this.onEvent = (response) => this.invoke(response);
    this.onPosted = (response) => this.posted(response);
    this.env = {
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    };
  }

  fatal(message) {
    if (this.exiting) return;
    this.exiting = true;
    process.stderr.write(`lamina runtime: ${message}\n`);
    process.exit(1);
  }

  start() {
    this.conn.send(this.nextRequest, this.onEvent);
  }

  /** Write a post (already serialized) and the next long poll in one write. */
  postThenNext(data) {
    if (this.exiting) return;
    this.conn.send(data + this.nextRequest, this.onPosted, this.onEvent);
  }

  posted(response) {
    if (response.status >= 500) {
      this.fatal(`the Runtime API answered ${response.status} to a post`);
    } else if (response.status !== 202) {
      process.stderr.write(
        `lamina runtime: post for ${this.requestId} answered ${response.status}\n`,
      );
    }
  }

  postResponse(requestId, result) {
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch {
      this.postError(requestId, new Error("Unable to stringify response body"));
      return;
    }
    this.postThenNext(
      request(
        "POST",
        `${INVOCATION_PATH}${encodeURIComponent(requestId)}/response`,
        this.conn.address,
        body,
        "Content-Type: application/json\r\n",
      ),
    );
  }

  postError(requestId, error) {
    this.logError("Invoke Error", error);
    const body = toRapidResponse(error);
    this.postThenNext(
      request(
        "POST",
        `${INVOCATION_PATH}${encodeURIComponent(requestId)}/error`,
        this.conn.address,
        JSON.stringify(body),
        `Content-Type: application/json\r\n${ERROR_TYPE_HEADER}: ${headerValue(body.errorType)}\r\n`,
      ),
    );
  }

  /** An uncaught exception or unhandled rejection: report it for the current invoke, exit. */
  async crash(error, code) {
    if (this.exiting) return;
    this.exiting = true;
    const body = toRapidResponse(error);
    await postFatal(
      this.conn.address,
      `${INVOCATION_PATH}${encodeURIComponent(this.requestId)}/error`,
      JSON.stringify(body),
      `${ERROR_TYPE_HEADER}: ${headerValue(body.errorType)}\r\n`,
    );
    process.exit(code);
  }

  invoke(response) {
    if (this.exiting) return;
    if (response.status !== 200) {
      this.fatal(`/runtime/invocation/next answered ${response.status}`);
      return;
    }
    const headers = response.headers;
    const requestId = headers["lambda-runtime-aws-request-id"];
    this.requestId = requestId;
    globalThis[REQUEST_ID_SYMBOL] = requestId;
    globalThis[TENANT_ID_SYMBOL] = headers["lambda-runtime-aws-tenant-id"];
    const trace = headers["lambda-runtime-trace-id"];
    if (trace) process.env._X_AMZN_TRACE_ID = trace;
    else delete process.env._X_AMZN_TRACE_ID;
    if (this.streaming) {
      this.invokeStreaming(requestId, headers, response.body).catch((err) => this.crash(err, 129));
    } else {
      this.invokeBuffered(requestId, headers, response.body);
    }
  }

  invokeBuffered(requestId, headers, body) {
    const [callback, context, markCompleted] = this.callbackContext(requestId);
    // A handler that neither returns a promise nor calls back answers null once its work is done.
    globalThis[BEFORE_EXIT_SYMBOL] = () => {
      markCompleted();
      this.postResponse(requestId, null);
    };
    try {
      const result = this.handler(
        JSON.parse(body.toString()),
        this.attachEnvironmentData(context, headers),
        callback,
      );
      if (result && typeof result.then === "function") {
        result.then(context.succeed, context.fail).catch(context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  /** AWS's callback/context.succeed/fail/done semantics; only the first call counts. */
  callbackContext(requestId) {
    let waitForEmptyEventLoop = true;
    let completed = false;
    let finished = false;
    const complete = (result) => {
      if (completed) {
        console.error(
          "Invocation has already been reported as done. Cannot call complete more than once per invocation.",
        );
        return;
      }
      completed = true;
      this.postResponse(requestId, result);
    };
    const done = (err, result) => {
      globalThis[BEFORE_EXIT_SYMBOL] = noop;
      if (err !== undefined && err !== null) this.postError(requestId, err);
      else complete(result);
    };
    const callback = (err, result) => {
      globalThis[BEFORE_EXIT_SYMBOL] = noop;
      if (err !== undefined && err !== null) this.postError(requestId, err);
      else if (!waitForEmptyEventLoop) complete(result);
      else globalThis[BEFORE_EXIT_SYMBOL] = () => setImmediate(() => complete(result));
    };
    const once =
      (fn) =>
      (...args) => {
        if (!finished) {
          fn(...args);
          finished = true;
        }
      };
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: once((result) => done(null, result)),
      fail: once((err) => (err === undefined || err === null ? done("handled") : done(err, null))),
      done: once(done),
    };
    return [once(callback), context, () => (completed = true)];
  }

  attachEnvironmentData(context, headers) {
    const deadline = headers["lambda-runtime-deadline-ms"];
    return Object.assign(context, this.env, {
      clientContext: parseJsonHeader(headers["lambda-runtime-client-context"], "ClientContext"),
      identity: parseJsonHeader(headers["lambda-runtime-cognito-identity"], "CognitoIdentity"),
      invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
      awsRequestId: headers["lambda-runtime-aws-request-id"],
      tenantId: headers["lambda-runtime-aws-tenant-id"],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    });
  }

  async invokeStreaming(requestId, headers, body) {
    let waitForEmptyEventLoop = true;
    const stream = new ResponseStream(this, requestId, this.highWaterMark);
    const fail = (err) => {
      this.logError("Invoke Error", err);
      stream.destroy(); // drop chunks not yet on the socket: the trailers end the body
      stream.finish(err);
    };
    globalThis[BEFORE_EXIT_SYMBOL] = noop;
    try {
      const context = this.attachEnvironmentData(
        {
          get callbackWaitsForEmptyEventLoop() {
            return waitForEmptyEventLoop;
          },
          set callbackWaitsForEmptyEventLoop(value) {
            waitForEmptyEventLoop = value;
          },
        },
        headers,
      );
      const result = this.handler(JSON.parse(body.toString()), stream, context);
      if (!result || typeof result.then !== "function") {
        fail("Streaming does not support non-async handlers.");
        return;
      }
      if ((await result) !== undefined) console.warn("Streaming handlers ignore return values.");
      if (!stream.writableFinished && !stream.bodyDone) {
        // AWS waits for the stream to end (until the timeout) and then checks it.
        await new Promise((resolve) => {
          stream.once("finish", resolve);
          stream.once("close", resolve);
        });
      }
      if (!stream.bodyDone) fail("Response stream is not finished.");
    } catch (err) {
      if (!stream.bodyDone) fail(err);
    }
  }
}

function noop() {}

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

// --------------------------------------------------------------------------------- main

async function main() {
  const logError = patchConsole();
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    process.stderr.write("lamina runtime: AWS_LAMBDA_RUNTIME_API is not set\n");
    process.exit(1);
  }
  let runtime = null;
  let exiting = false;
  // Until the first invoke these report init errors; then they report for the invoke.
  const initError = async (error, code) => {
    if (exiting) return;
    exiting = true;
    const body = toRapidResponse(error);
    await postFatal(
      address,
      INIT_ERROR_PATH,
      JSON.stringify(body),
      `${ERROR_TYPE_HEADER}: ${headerValue(body.errorType)}\r\n`,
    );
    process.exit(code);
  };
  process.on("uncaughtException", (error) => {
    logError("Uncaught Exception", error);
    if (runtime?.requestId !== undefined) runtime.crash(error, 129);
    else initError(error, 129);
  });
  process.on("unhandledRejection", (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError("Unhandled Promise Rejection", error);
    if (runtime?.requestId !== undefined) runtime.crash(error, 128);
    else initError(error, 128);
  });
  globalThis[BEFORE_EXIT_SYMBOL] = noop;
  process.on("beforeExit", () => globalThis[BEFORE_EXIT_SYMBOL]());

  if (!["1", "true"].includes(process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA)) {
    globalThis.awslambda = {
      streamifyResponse: (handler, options) => {
        handler[HANDLER_STREAMING] = STREAM_RESPONSE;
        if (typeof options?.highWaterMark === "number") {
          handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark);
        }
        return handler;
      },
      HttpResponseStream,
    };
  }
  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const handler = await loadHandler(appRoot, process.env._HANDLER ?? "");
  runtime = new Runtime(address, handler, logError);
  runtime.start();
}

// A load failure rejects here; report it as AWS does for an uncaught exception at init.
main().catch((error) => process.emit("uncaughtException", error));
