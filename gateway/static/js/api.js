// The public REST API, as any client calls it: a bearer token, JSON in and out, problem
// details (RFC 9457) turned into ApiError, ETags kept for If-Match.

const TOKEN_KEY = "upstream.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "";
    this.violations = problem.violations || [];
    this.requestId = problem.request_id || "";
    // The error's ErrorInfo: why, in a word, and what it names.
    const info = (problem.details || []).find((detail) => String(detail["@type"] || "").endsWith("ErrorInfo"));
    this.reason = (info && info.reason) || "";
    this.metadata = (info && info.metadata) || {};
  }

  get stale() {
    return this.status === 412;
  }
}

export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// The token's claims, read to shape the page only; every call is authorised by the server.
export function identityOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) {
    throw new Error("This is not a bearer token (a JWT has three parts separated by dots).");
  }
  let claims;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
  } catch {
    throw new Error("This token's claims cannot be read.");
  }
  if (!claims.customer || !claims.role) {
    throw new Error("This token names no customer or role.");
  }
  if (claims.exp && claims.exp * 1000 < Date.now()) {
    throw new Error("This token has expired: make a new one.");
  }
  return {
    subject: claims.sub || "",
    customer: claims.customer,
    role: claims.role,
    canWrite: claims.role === "admin" || claims.role === "superuser",
  };
}

export class Api {
  constructor(token) {
    this.token = token;
    this.identity = identityOf(token);
    this.base = `/v1/customers/${encodeURIComponent(this.identity.customer)}`;
  }

  // The token is kept for this tab only, so a reload keeps the session and closing it ends it.
  remember() {
    sessionStorage.setItem(TOKEN_KEY, this.token);
  }

  url(path, query) {
    const target = path.startsWith("/v1/") ? path : `${this.base}${path}`;
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query || {})) {
      for (const one of Array.isArray(value) ? value : [value]) {
        if (one !== undefined && one !== null && one !== "") params.append(key, one);
      }
    }
    const search = params.toString();
    return search ? `${target}?${search}` : target;
  }

  async call(method, path, { query, json, etag } = {}) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    if (etag) headers["If-Match"] = `"${etag}"`;
    const response = await fetch(this.url(path, query), {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      cache: "no-cache",
    });
    const text = await response.text();
    const body = text ? JSON.parse(text) : {};
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  get(path, query) {
    return this.call("GET", path, { query });
  }

  post(path, json, query) {
    return this.call("POST", path, { json: json || {}, query });
  }

  patch(path, json, { etag, mask } = {}) {
    return this.call("PATCH", path, { json, etag, query: { updateMask: mask } });
  }

  delete(path, { etag } = {}) {
    return this.call("DELETE", path, { etag });
  }

  // The messages of a server stream (newline-delimited JSON, each line a `result` or an
  // `error`).
  async stream(path, query) {
    const response = await fetch(this.url(path, query), {
      headers: { Authorization: `Bearer ${this.token}`, Accept: "application/json" },
      cache: "no-cache",
    });
    const lines = (await response.text()).split("\n").filter((line) => line.trim());
    const messages = lines.map((line) => JSON.parse(line));
    if (!response.ok) throw new ApiError(response.status, messages[0] || {});
    const failed = messages.find((message) => message.error);
    if (failed) throw new ApiError(500, { detail: failed.error.message, code: failed.error.code });
    return messages.map((message) => message.result || {});
  }

  // A resource by its full name (`customers/acme/driftEvents/ev_1`).
  named(name) {
    return `/v1/${name}`;
  }

  // Every item of a list, following page tokens up to `limit` items.
  async list(path, field, query = {}, limit = 1000) {
    const items = [];
    let pageToken = "";
    do {
      const page = await this.get(path, { ...query, pageSize: Math.min(limit, 1000), pageToken });
      items.push(...(page[field] || []));
      pageToken = page.nextPageToken || "";
    } while (pageToken && items.length < limit);
    return items.slice(0, limit);
  }

  // A file sent as the request body under the id `uploadId`, `onProgress(sent, total)` as
  // it goes; the Upload.
  upload(file, { mode, columnMap = {}, uploadId, requestId, onProgress }) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      const query = { "upload.fileName": file.name, "upload.mode": mode, uploadId };
      for (const [column, heading] of Object.entries(columnMap)) {
        query[`upload.columnMap[${column}]`] = heading;
      }
      request.open("POST", this.url("/uploads", query));
      request.setRequestHeader("Authorization", `Bearer ${this.token}`);
      request.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      request.setRequestHeader("Idempotency-Key", requestId);
      request.upload.addEventListener("progress", (event) => {
        onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
      });
      request.addEventListener("load", () => {
        let body = {};
        try {
          body = JSON.parse(request.responseText || "{}");
        } catch {
          body = { detail: request.responseText };
        }
        if (request.status >= 200 && request.status < 300) resolve(body);
        else reject(new ApiError(request.status, body));
      });
      request.addEventListener("error", () =>
        reject(new ApiError(0, { detail: "The connection failed before the upload finished." })),
      );
      request.send(file);
    });
  }
}
