// Two small behaviours, no framework: the heat-map opacity slider and the CT/MR slice and
// frame stack (a range input: arrow keys, Page Up/Down, Home and End move it too).
const PRELOAD_ALL = 64; // stacks up to this long are fetched at once; longer ones around the view
const PRELOAD_NEAR = 4;

// A series' stack is [[instance id, frames], ...]; slider position p (0-based) is a frame of the
// instance whose frames cover p: [instance id, frame from 1, or null for a single-frame image].
function locate(stack, p) {
  for (const [id, frames] of stack) {
    if (p < frames) return [id, frames > 1 ? p + 1 : null];
    p -= frames;
  }
  return [stack[stack.length - 1][0], null];
}

function pictureUrl([id, frame]) {
  return `/images/${id}.png?size=512` + (frame ? `&frame=${frame}` : "");
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".prediction").forEach((box) => {
    const slider = box.querySelector("input.opacity");
    const heat = box.querySelector("img.heat");
    if (slider && heat) {
      slider.addEventListener("input", () => { heat.style.opacity = slider.value / 100; });
    }
  });
  document.querySelectorAll("figure.stack").forEach((fig) => {
    const stack = JSON.parse(fig.dataset.stack);
    const steps = stack.reduce((n, [, frames]) => n + frames, 0);
    const step = fig.dataset.step;
    const modality = fig.closest(".series").dataset.modality;
    const img = fig.querySelector("img");
    const slider = fig.querySelector("input.slice");
    const label = fig.querySelector(".slice-no");
    const link = fig.querySelector("a.download");
    const fetched = new Set();
    const preload = (from, to) => {
      for (let p = Math.max(0, from); p <= Math.min(steps - 1, to); p++) {
        const url = pictureUrl(locate(stack, p));
        if (!fetched.has(url)) { fetched.add(url); new Image().src = url; }
      }
    };
    // Every picture is rendered on the server (a frame of a volume decodes alone): fetch a short
    // stack whole so that scrolling does not wait, a long one only around the shown picture.
    preload(0, steps <= PRELOAD_ALL ? steps - 1 : PRELOAD_NEAR);
    img.addEventListener("load", () => img.classList.remove("loading"));
    slider.addEventListener("input", () => {
      const at = slider.value - 1;
      const text = `${step} ${slider.value} of ${steps}`;
      img.classList.add("loading");
      const [id, frame] = locate(stack, at);
      img.src = pictureUrl([id, frame]);
      img.alt = `${modality} ${text}`;
      label.textContent = slider.value;
      slider.setAttribute("aria-valuetext", text);
      if (link) link.href = `/images/${id}.dcm`;
      if (steps > PRELOAD_ALL) preload(at - PRELOAD_NEAR, at + PRELOAD_NEAR);
    });
  });
});
