// Small DOM helpers every panel uses.

export const $ = (id) => document.getElementById(id);

// A status line's text, red when it is an error.
export function show(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", isError);
}
