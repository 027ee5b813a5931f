// The pages' REST client: the bearer token in sessionStorage, JSON calls to /api/v1, and
// failures turned into sentences a person can act on. Shared by annotate.js and overview.js.
"use strict";

const Cincer = (() => {
  const prefix = document.body.dataset.api;
  const TOKEN = "cincer.token";
  const PROJECT = "cincer.project";

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || {};
    }
  }

  function token() { return sessionStorage.getItem(TOKEN); }
  function setToken(secret) { sessionStorage.setItem(TOKEN, secret); }
  function project() {
    const fromUrl = new URLSearchParams(location.search).get("project");
    return Number(fromUrl || sessionStorage.getItem(PROJECT)) || null;
  }
  function setProject(pid) { sessionStorage.setItem(PROJECT, String(pid)); }
  function signOut() { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(PROJECT); }

  // One call to the API; resolves to the parsed body (null for 204), rejects with ApiError.
  // ``extra``: more request headers (an Idempotency-Key).
  async function call(method, path, body, extra) {
    const headers = {"Authorization": "Bearer " + token(), "Accept": "application/json",
                     ...(extra || {})};
    const init = {method, headers};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(prefix + path, init);
    } catch (e) {
      throw new ApiError(0, "network", "The server cannot be reached. Check the connection; " +
                         "nothing was saved by this action.");
    }
    if (response.status === 204) return null;
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    if (response.ok) return data;
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status,
                       error.message || response.statusText, error.details);
  }

  // A sentence for a failed call; ``what`` says what was being done ("saving your answer").
  function explain(error, what) {
    if (!(error instanceof ApiError)) return "Something went wrong while " + what + ": " + error;
    switch (error.status) {
      case 0: return error.message;
      case 401: return "The server did not accept your token. Sign in again with a valid token.";
      case 403: return "Your token is not allowed to do this (" + what + "). An annotator " +
                       "or admin token is needed.";
      case 404: return "The server does not know this (" + what + "): it may have been " +
                       "removed, or this server does not offer it yet.";
      case 405: return "This server does not offer " + what + " yet.";
      case 409: return "Not saved: " + error.message + ".";
      case 422: {
        const fields = Object.entries(error.details || {})
          .map(([field, why]) => `${field}: ${[].concat(why).join(", ")}`).join("; ");
        return "The server refused the values while " + what + ": " + error.message +
               (fields ? " (" + fields + ")" : "") + ".";
      }
      default: return "The server failed while " + what + " (" + error.status + "): " +
                      error.message;
    }
  }

  // Small DOM helper: el("div", {class: "x", text: "y"}, child, ...).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  // Show ``text`` in the page's #message box (kind: info, error, ...); empty hides it.
  function say(text, kind) {
    const box = document.getElementById("message");
    box.textContent = text || "";
    box.className = "message " + (kind || "info");
    box.hidden = !text;
  }

  // Wire the page's #sign-in-form: keep the pasted token, clear the field, then ``start()``.
  function onSignIn(start) {
    document.getElementById("sign-in-form").addEventListener("submit", event => {
      event.preventDefault();
      const field = document.getElementById("token");
      const secret = field.value.trim();
      if (!secret) return;
      setToken(secret);
      field.value = "";
      say("", "info");
      document.activeElement.blur();
      start();
    });
  }

  // Is ``shape`` an image ([h, w] or [h, w, c] with c in 1, 3, 4)?
  function isImage(shape) {
    return (shape.length === 2 && shape[0] > 1 && shape[1] > 1) ||
           (shape.length === 3 && [1, 3, 4].includes(shape[2]));
  }

  // Draw nested-list pixels ``x`` of ``shape`` on a canvas of about ``size`` px, each
  // pixel a square block (min-max scaled to 0..255 per image).
  function drawImage(canvas, x, shape, size) {
    const [h, w] = shape;
    const c = shape.length === 3 ? shape[2] : 1;
    const flat = x.flat(2);
    let lo = Infinity, hi = -Infinity;
    for (const v of flat) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const span = hi - lo || 1;
    const scale = Math.max(1, Math.floor(size / Math.max(h, w)));
    canvas.width = w * scale;
    canvas.height = h * scale;
    const ctx = canvas.getContext("2d");
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const at = (i * w + j) * c;
        const v = k => Math.round(255 * (flat[at + k] - lo) / span);
        ctx.fillStyle = c >= 3 ? `rgb(${v(0)},${v(1)},${v(2)})` :
          `rgb(${v(0)},${v(0)},${v(0)})`;
        ctx.fillRect(j * scale, i * scale, scale, scale);
      }
    }
  }

  return {ApiError, call, explain, el, token, setToken, onSignIn, project, setProject, signOut,
          say, isImage, drawImage};
})();
