// Talking to the vton API: the bearer token, JSON requests, readable errors, images, events.

import { $ } from "./dom.js";

function headers(json) {
  const h = { Authorization: `Bearer ${$("token").value.trim()}` };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// A framework's {"detail": [{loc, msg}, ...]} as "where: what; ..."; a string as it is.
function readable(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => (typeof d === "string" ? d : [d?.loc?.join("."), d?.msg].filter(Boolean).join(": ")))
      .filter(Boolean)
      .join("; ");
  }
  return "";
}

// The API answers errors as {"error": type, "detail": message}; anything else (another
// framework's body, a proxy's HTML page) still becomes one line of text.
async function errorMessage(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const detail = body && typeof body === "object" ? readable(body.detail) : "";
  if (detail && typeof body.error === "string") return `${body.error}: ${detail}`;
  const status = `${response.status} ${response.statusText}`.trim();
  return detail ? `${status}: ${detail}` : status;
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `the server did not answer (${error.message})`);
  }
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return response;
}

export async function api(method, path, body) {
  const response = await send(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.status === 204 ? null : response.json();
}

// An image the API serves behind the token (an <img> cannot send it), as a Blob.
export async function imageBlob(path) {
  const response = await send(path, { headers: headers(false) });
  return response.blob();
}

// The same as an object URL, for an <img>.
export async function authorizedImage(path) {
  return URL.createObjectURL(await imageBlob(path));
}

export function fileDataUrl(input) {
  const file = input.files[0];
  if (!file) return Promise.reject(new Error(`choose a file for ${input.labels[0]?.textContent.trim() || input.id}`));
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// Text of an error of any kind, for the page (never "[object Object]").
export function errorText(error) {
  if (error instanceof Error) return error.message;
  return typeof error === "string" ? error : "unexpected error";
}

// One server-sent event block ("id:", "event:", "data:" lines; ":" comments ignored).
function parseEvent(block) {
  const event = { id: null, name: "message", data: [] };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") event.id = value;
    else if (field === "event") event.name = value;
    else if (field === "data") event.data.push(value);
  }
  return event;
}

// Server-sent events over fetch (an EventSource cannot send the Authorization header), from
// after `lastEventId` when given; returns the last event id seen when the server ends the
// stream.
export async function followEvents(path, onEvent, lastEventId = null) {
  const init = { headers: headers(false) };
  if (lastEventId !== null) init.headers["Last-Event-ID"] = lastEventId;
  const response = await send(path, init);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return lastEventId;
    buffer += decoder.decode(value, { stream: true });
    // CRLF or CR line ends as LF; a CR at the very end may be the first half of a CRLF
    const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    buffer = buffer.slice(0, cut).replace(/\r\n?/g, "\n") + buffer.slice(cut);
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event.id !== null) lastEventId = event.id;
      if (event.data.length) onEvent(event.name, JSON.parse(event.data.join("\n")));
    }
  }
}
