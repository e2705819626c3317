// Two small behaviours, no framework: the heat-map opacity slider and the CT/MR slice and
// frame stack (a range input: arrow keys, Page Up/Down, Home and End move it too).
const PRELOAD_ALL = 64; // stacks up to this long are fetched at once; longer ones around the view
const PRELOAD_NEAR = 4;

function stackUrl([id, frame]) {
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
    const stack = JSON.parse(fig.dataset.stack); // [[instance id, frame or null], ...]
    const step = fig.dataset.step;
    const img = fig.querySelector("img");
    const slider = fig.querySelector("input.slice");
    const label = fig.querySelector(".slice-no");
    const link = fig.querySelector("a.download");
    const modality = fig.closest(".series").dataset.modality;
    const fetched = new Set();
    const preload = (from, to) => {
      for (let i = Math.max(0, from); i <= Math.min(stack.length - 1, to); i++) {
        const url = stackUrl(stack[i]);
        if (!fetched.has(url)) { fetched.add(url); new Image().src = url; }
      }
    };
    // Every picture is rendered on the server (a frame of a volume decodes alone): fetch a short
    // stack whole so that scrolling does not wait, a long one only around the shown picture.
    if (stack.length <= PRELOAD_ALL) preload(0, stack.length - 1); else preload(0, PRELOAD_NEAR);
    img.addEventListener("load", () => img.classList.remove("loading"));
    slider.addEventListener("input", () => {
      const at = slider.value - 1;
      const text = `${step} ${slider.value} of ${stack.length}`;
      img.classList.add("loading");
      img.src = stackUrl(stack[at]);
      img.alt = `${modality} ${text}`;
      label.textContent = slider.value;
      slider.setAttribute("aria-valuetext", text);
      if (link) link.href = `/images/${stack[at][0]}.dcm`;
      if (stack.length > PRELOAD_ALL) preload(at - PRELOAD_NEAR, at + PRELOAD_NEAR);
    });
  });
});
