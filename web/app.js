// The photo page: sign in (authorization code flow with PKCE against the configured issuer:
// Cognito's hosted UI in AWS, the demo's local issuer on this machine), upload through the
// upload API's presigned POST with a progress bar per file, then follow each photo's
// record until it is final and show its variants and facts. Configuration comes from
// config.js (written by scripts/deploy in AWS, served by local-edge in the demo).
"use strict";
(function () {
  const config = window.PIPELINE_CONFIG;
  const $ = (id) => document.getElementById(id);
  const FINAL = new Set(["DONE", "FAILED", "DELETED"]);
  const STATUS_TEXT = {
    UPLOADING: "uploaded, waiting for processing",
    PENDING: "processing",
    DONE: "done",
    FAILED: "failed",
    DELETED: "deleted",
  };
  const cards = new Map();
  let nextCursor = null;

  function notice(text) {
    $("notice").textContent = text || "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function bytes(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MiB";
    if (n >= 1024) return Math.round(n / 1024) + " KiB";
    return n + " bytes";
  }

  // ------------------------------------------------------------ sign-in (PKCE)
  function b64url(bytes) {
    let text = "";
    for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function redirectUri() {
    return location.origin + location.pathname;
  }

  async function endpoints() {
    const auth = config.auth;
    if (auth.authorizationEndpoint && auth.tokenEndpoint) return auth;
    const discovery = await (await fetch(auth.issuer.replace(/\/$/, "") + "/.well-known/openid-configuration")).json();
    return { ...auth, authorizationEndpoint: discovery.authorization_endpoint, tokenEndpoint: discovery.token_endpoint };
  }

  async function signIn() {
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
    const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    sessionStorage.setItem("pkce", JSON.stringify({ verifier, state }));
    const auth = await endpoints();
    const params = new URLSearchParams({
      response_type: "code", client_id: auth.clientId, redirect_uri: redirectUri(),
      scope: auth.scope || "openid", state, code_challenge: challenge, code_challenge_method: "S256",
    });
    location.assign(auth.authorizationEndpoint + "?" + params);
  }

  async function finishSignIn(params) {
    const pending = JSON.parse(sessionStorage.getItem("pkce") || "null");
    sessionStorage.removeItem("pkce");
    history.replaceState(null, "", redirectUri());
    if (!pending || pending.state !== params.get("state")) throw new Error("the sign-in answer does not match this page's request; sign in again");
    const auth = await endpoints();
    const response = await fetch(auth.tokenEndpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code", client_id: auth.clientId, code: params.get("code"),
        redirect_uri: redirectUri(), code_verifier: pending.verifier,
      }),
    });
    const tokens = await response.json();
    if (!response.ok) throw new Error("sign-in failed: " + (tokens.error_description || tokens.error || response.status));
    sessionStorage.setItem("tokens", JSON.stringify({ ...tokens, expires_at: Date.now() + 1000 * (tokens.expires_in || 3600) }));
  }

  function tokens() {
    const t = JSON.parse(sessionStorage.getItem("tokens") || "null");
    return t && t.expires_at > Date.now() + 5000 ? t : null;
  }

  function userName(t) {
    try {
      const claims = JSON.parse(atob(t.id_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return claims.email || claims["cognito:username"] || claims.name || claims.sub;
    } catch (e) {
      return "signed in";
    }
  }

  // ------------------------------------------------------------ API
  async function api(method, path, body) {
    const t = tokens();
    if (!t) {
      showSignedOut("Your session ended: sign in again.");
      throw new Error("not signed in");
    }
    const response = await fetch(config.apiUrl.replace(/\/$/, "") + path, {
      method,
      headers: { authorization: "Bearer " + t.access_token, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401) {
      sessionStorage.removeItem("tokens");
      showSignedOut("Your session ended: sign in again.");
    }
    return { status: response.status, ok: response.ok, body: answer };
  }

  // ------------------------------------------------------------ cards
  function card(key, title) {
    let c = key && cards.get(key);
    if (c) return c;
    const node = el("article", { class: "photo" });
    const heading = el("h2", {}, title || key);
    const status = el("div", { class: "status" });
    const body = el("div", { class: "body" });
    node.append(heading, status, body);
    $("photos").prepend(node);
    c = { node, heading, status, body, key };
    if (key) {
      node.dataset.key = key;
      cards.set(key, c);
    }
    return c;
  }

  function setStatus(c, status, text) {
    c.node.dataset.status = status;
    c.status.className = "status " + status.toLowerCase();
    c.status.textContent = text || STATUS_TEXT[status] || status;
  }

  function refuse(c, code, message) {
    c.node.dataset.status = "REFUSED";
    c.node.dataset.code = code;
    c.status.textContent = "";
    c.body.replaceChildren(el("p", { class: "refused" }, "Refused (" + code + "): " + message));
  }

  function variantFigure(v, blurhash) {
    const aspect = v.width && v.height ? v.width / v.height : 1;
    const shown = Math.min(v.width || 320, 320);
    const frame = el("div", { class: "frame", style: `width:${shown}px;aspect-ratio:${v.width || 4}/${v.height || 3}` });
    if (blurhash && window.BlurHash) {
      const canvas = el("canvas", { "aria-hidden": "true" });
      try { window.BlurHash.paint(canvas, blurhash, aspect); frame.append(canvas); } catch (e) { /* no placeholder */ }
    }
    const img = el("img", { alt: v.name + " variant", loading: "lazy", src: v.url });
    img.addEventListener("load", () => img.classList.add("loaded"));
    frame.append(img);
    const caption = el("figcaption", {}, `${v.name} ${v.width || "?"}×${v.height || "?"}${v.bytes ? ", " + bytes(v.bytes) : ""}`);
    return el("figure", { class: "variant", "data-name": v.name }, frame, caption);
  }

  function facts(image) {
    const rows = [];
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") rows.push(el("dt", {}, k), el("dd", {}, String(v))); };
    if (image.width) add("dimensions", `${image.width} × ${image.height}` + (image.format ? ` (${image.format})` : ""));
    if (image.size_bytes) add("size", bytes(image.size_bytes));
    const cam = image.camera || {};
    add("camera", [cam.make, cam.model].filter(Boolean).join(" "));
    add("lens", cam.lens);
    add("date taken", cam.date_taken);
    const exposure = [cam.exposure_time && cam.exposure_time + " s", cam.f_number && "f/" + cam.f_number, cam.iso && "ISO " + cam.iso, cam.focal_length_mm && cam.focal_length_mm + " mm"].filter(Boolean).join(", ");
    add("exposure", exposure);
    add("GPS", image.has_gps ? "present in the original (not shown; variants carry none)" : "none");
    return el("dl", { class: "facts" }, ...rows);
  }

  function render(image) {
    const c = card(image.key, image.name || image.key);
    c.heading.textContent = image.name || image.key;
    setStatus(c, image.status);
    if (image.status === "DONE") {
      const variants = el("div", { class: "variants" }, ...image.variants.map((v) => variantFigure(v, image.blurhash)));
      c.body.replaceChildren(facts(image), variants);
    } else if (image.status === "FAILED" && image.error) {
      c.body.replaceChildren(el("p", { class: "refused" }, `Failed (${image.error.code}): ${image.error.message}`));
    }
    return c;
  }

  async function follow(key) {
    for (let wait = 500; ; wait = Math.min(wait * 1.5, 5000)) {
      const answer = await api("GET", "/images/" + key.split("/").map(encodeURIComponent).join("/"));
      if (answer.ok) {
        render(answer.body);
        if (FINAL.has(answer.body.status)) return;
      } else if (answer.status !== 404) {
        setStatus(cards.get(key), "ERROR", "could not read the record: " + (answer.body.message || answer.status));
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  // ------------------------------------------------------------ uploads
  function post(form, file, progress) {
    return new Promise((resolve, reject) => {
      const data = new FormData();
      for (const [k, v] of Object.entries(form.fields)) data.append(k, v);
      data.append("file", file);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.url);
      xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) progress.value = e.loaded / e.total; });
      xhr.addEventListener("load", () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(s3Error(xhr)))));
      xhr.addEventListener("error", () => reject(new Error("the upload could not reach S3")));
      xhr.send(data);
    });
  }

  function s3Error(xhr) {
    const code = /<Code>([^<]+)<\/Code>/.exec(xhr.responseText || "");
    const message = /<Message>([^<]+)<\/Message>/.exec(xhr.responseText || "");
    return `S3 refused the upload (HTTP ${xhr.status}${code ? ", " + code[1] : ""})${message ? ": " + message[1] : ""}`;
  }

  async function upload(file) {
    const c = card(null, file.name);
    c.node.dataset.name = file.name;
    setStatus(c, "REQUESTING", "asking for an upload form");
    const answer = await api("POST", "/uploads", { name: file.name, content_type: file.type || "application/octet-stream", size: file.size });
    if (!answer.ok) {
      refuse(c, answer.body.code || "error-" + answer.status, answer.body.message || "the upload API refused the file");
      return;
    }
    const key = answer.body.key;
    c.key = key;
    c.node.dataset.key = key;
    cards.set(key, c);
    const progress = el("progress", { max: "1", value: "0" });
    c.body.replaceChildren(progress);
    setStatus(c, "SENDING", `uploading ${bytes(file.size)}`);
    try {
      await post(answer.body.upload, file, progress);
    } catch (e) {
      refuse(c, "upload-failed", e.message);
      return;
    }
    progress.value = 1;
    setStatus(c, "UPLOADING");
    await follow(key);
  }

  function take(files) {
    for (const file of files) upload(file).catch((e) => notice(e.message));
  }

  // ------------------------------------------------------------ list
  async function loadPage() {
    const query = "?limit=24" + (nextCursor ? "&cursor=" + encodeURIComponent(nextCursor) : "");
    const answer = await api("GET", "/images" + query);
    if (!answer.ok) return notice("Could not list your photos: " + (answer.body.message || answer.status));
    for (const image of answer.body.images.slice().reverse()) {
      if (cards.has(image.key)) continue;
      const c = render(image);
      $("photos").append(c.node);
      if (!FINAL.has(image.status)) follow(image.key);
    }
    nextCursor = answer.body.next_cursor;
    $("more").hidden = !nextCursor;
  }

  // ------------------------------------------------------------ page
  function showSignedOut(text) {
    $("sign-in").hidden = false;
    $("sign-out").hidden = true;
    $("upload").hidden = true;
    $("who").textContent = "";
    notice(text || "Sign in to upload photos and see yours.");
  }

  function showSignedIn(t) {
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    $("upload").hidden = false;
    $("who").textContent = userName(t);
    notice("");
  }

  async function start() {
    if (!config) return notice("config.js is missing: the page does not know its API.");
    $("environment").textContent = config.environment ? "Environment: " + config.environment : "";
    $("sign-in").addEventListener("click", () => signIn().catch((e) => notice(e.message)));
    $("sign-out").addEventListener("click", () => { sessionStorage.clear(); location.assign(redirectUri()); });
    $("more").addEventListener("click", () => loadPage());
    const drop = $("drop");
    $("file-input").addEventListener("change", (e) => { take(e.target.files); e.target.value = ""; });
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); take(e.dataTransfer.files); });

    const params = new URLSearchParams(location.search);
    if (params.has("code")) {
      try { await finishSignIn(params); } catch (e) { return showSignedOut(e.message); }
    } else if (params.has("error")) {
      history.replaceState(null, "", redirectUri());
      return showSignedOut("Sign-in failed: " + (params.get("error_description") || params.get("error")));
    }
    const t = tokens();
    if (!t) return showSignedOut();
    showSignedIn(t);
    await loadPage();
  }

  start();
})();
