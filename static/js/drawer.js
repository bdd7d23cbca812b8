// Parley's chat list as a drawer on narrow screens (below 768px; the CSS decides).
//
// Loaded in <head> without `defer`, so the class below is set before the first paint and
// the list does not flash open. Without this script nothing is hidden: the sidebar stays
// above the chat on narrow screens and the "Chats" button stays hidden.
// The button (#drawer-toggle, server-rendered and translated) is a disclosure button:
// aria-expanded says whether the list (#sidebar, its aria-controls) is open. Opening
// moves focus into the list (the current chat, else its first link); Escape closes it
// and returns focus to the button. No inline script anywhere (CSP).

document.documentElement.classList.add("has-drawer");

function setUpDrawer() {
  const toggle = document.getElementById("drawer-toggle");
  const drawer = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
  if (!toggle || !drawer) {
    document.documentElement.classList.remove("has-drawer"); // keep the sidebar reachable
    return;
  }
  const isOpen = () => toggle.getAttribute("aria-expanded") === "true";
  // Only when the button is shown: on wide screens the sidebar is always visible.
  const isDrawer = () => toggle.offsetParent !== null;

  function open() {
    toggle.setAttribute("aria-expanded", "true");
    drawer.classList.add("is-open");
    const target =
      drawer.querySelector('[aria-current="page"]') || drawer.querySelector("a[href], button, input");
    if (target) target.focus();
  }

  function close({ returnFocus = true } = {}) {
    toggle.setAttribute("aria-expanded", "false");
    drawer.classList.remove("is-open");
    if (returnFocus) toggle.focus();
  }

  toggle.addEventListener("click", () => (isOpen() ? close() : open()));

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !isOpen() || !isDrawer()) return;
    const inside = drawer.contains(document.activeElement) || document.activeElement === toggle;
    close({ returnFocus: inside || document.activeElement === document.body });
  });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", setUpDrawer);
} else {
  setUpDrawer();
}
