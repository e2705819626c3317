// Two small behaviours, no framework: the heat-map opacity slider and the CT/MR slice stack.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".prediction").forEach((box) => {
    const slider = box.querySelector("input.opacity");
    const heat = box.querySelector("img.heat");
    if (slider && heat) {
      slider.addEventListener("input", () => { heat.style.opacity = slider.value / 100; });
    }
  });
  document.querySelectorAll("figure.stack").forEach((fig) => {
    const ids = JSON.parse(fig.dataset.srcs);
    const img = fig.querySelector("img");
    const slider = fig.querySelector("input.slice");
    const label = fig.querySelector(".slice-no");
    const link = fig.querySelector("a.download");
    // Preload every slice so that scrolling through the stack does not wait on the server.
    ids.forEach((id) => { new Image().src = `/images/${id}.png?size=512`; });
    slider.addEventListener("input", () => {
      const id = ids[slider.value - 1];
      img.src = `/images/${id}.png?size=512`;
      label.textContent = slider.value;
      if (link) link.href = `/images/${id}.dcm`;
    });
  });
});
