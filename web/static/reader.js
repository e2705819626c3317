// The reading page (no framework): zoom and pan, window/level re-rendered by the server from the
// stored pixel values (image.png?level=&window=, fractions of the image's range), heat-map
// opacity, keyboard shortcuts and the time spent on the case (counted only while the page is
// visible), sent with the answer.
(function () {
  const page = document.getElementById("reading");
  if (!page) return;
  const frame = document.getElementById("frame");
  const imgs = frame.querySelectorAll("img");
  const base = document.getElementById("radiograph");
  const heat = document.getElementById("heat");
  const zoom = document.getElementById("zoom");
  const win = document.getElementById("window");
  const level = document.getElementById("level");
  const opacity = document.getElementById("opacity");
  const form = document.getElementById("answer");
  const score = document.getElementById("score");
  let panX = 0, panY = 0;
  const plain = base.getAttribute("src");  // the header's window; reset returns to it
  let windowed = false, pending = null;

  function draw() {
    const z = parseFloat(zoom.value);
    const t = `translate(${panX}px, ${panY}px) scale(${z})`;
    imgs.forEach((im) => { im.style.transform = t; });
    if (heat && opacity) heat.style.opacity = opacity.value / 100;
  }
  // Window and level: the server re-windows the stored values (one request per pause, not per
  // pixel of a drag); the header's window stays until the reader moves either.
  function rewindow() {
    windowed = true;
    clearTimeout(pending);
    pending = setTimeout(() => {
      base.src = `${plain}?level=${level.value / 100}&window=${win.value / 100}`;
    }, 120);
  }
  [zoom, opacity].forEach((c) => c && c.addEventListener("input", draw));
  [win, level].forEach((c) => c.addEventListener("input", rewindow));
  function reset() {
    zoom.value = 1; win.value = 100; level.value = 50; panX = panY = 0;
    clearTimeout(pending);
    if (windowed) { base.src = plain; windowed = false; }
    draw();
  }
  document.getElementById("reset").addEventListener("click", reset);

  let drag = null;
  frame.addEventListener("mousedown", (e) => {
    drag = { x: e.clientX, y: e.clientY, shift: e.shiftKey, w: +win.value, l: +level.value,
             px: panX, py: panY };
    e.preventDefault();
  });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.shift) {
      win.value = Math.max(1, Math.min(200, drag.w + dx));
      level.value = Math.max(0, Math.min(100, drag.l - dy / 2));
      rewindow();
    } else { panX = drag.px + dx; panY = drag.py + dy; draw(); }
  });
  frame.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoom.value = Math.max(1, Math.min(6, parseFloat(zoom.value) + (e.deltaY < 0 ? 0.25 : -0.25)));
    draw();
  }, { passive: false });

  // Time on the case: visible time only (a reader who leaves the tab is not reading).
  let spent = 0, since = document.hidden ? null : performance.now();
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && since !== null) { spent += performance.now() - since; since = null; }
    else if (!document.hidden && since === null) since = performance.now();
  });
  function seconds() { return (spent + (since === null ? 0 : performance.now() - since)) / 1000; }
  if (form) form.addEventListener("submit", () => {
    document.getElementById("seconds").value = seconds().toFixed(2);
  });

  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (typing) return; // the score box takes digits and Enter itself
    if (e.key >= "0" && e.key <= "9" && score) score.value = parseInt(e.key, 10) * 10;
    else if (e.key === "n" && form && score && score.value !== "") form.requestSubmit();
    else if (e.key === "+" || e.key === "=") { zoom.value = Math.min(6, +zoom.value + 0.5); draw(); }
    else if (e.key === "-") { zoom.value = Math.max(1, +zoom.value - 0.5); draw(); }
    else if (e.key === "r") reset();
    else if (e.key === "h" && opacity) { opacity.value = +opacity.value > 0 ? 0 : 40; draw(); }
    else return;
    e.preventDefault();
  });
  draw();
  // Ready for the keyboard: the score box has the focus (autofocus alone is not kept when the
  // page comes from a redirect after the previous answer).
  if (score && !(document.activeElement instanceof HTMLInputElement)) score.focus();
})();
