// A time series drawn by uPlot: fits its container's width, zooms by dragging, resets on a
// double click; colours follow the page's theme. With a single point (or all at one time) the
// time axis spans the `span` seconds before it, not uPlot's default of years after it.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  t: number[]; // seconds since the epoch
  v: number[];
}

function themeColour(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function Chart({ label, series, span }: { label: string; series: Series; span: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const spanNow = useRef(span);
  spanNow.current = span;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ink = themeColour("--muted", "#666");
    const grid = themeColour("--line", "#ddd");
    const accent = themeColour("--accent", "#c2410c");
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    plot.current = new uPlot(
      {
        width: el.clientWidth || 600,
        height: 260,
        series: [{}, { label, stroke: accent, width: 2, spanGaps: false }],
        scales: {
          x: {
            time: true,
            // uPlot's own range for a single time is 86,400,000 s (years) after it.
            range: (u, min, max): uPlot.Range.MinMax => {
              const xs = u.data[0];
              const one = xs.length > 0 && xs[0] === xs[xs.length - 1];
              return one ? [xs[0] - spanNow.current, xs[0]] : [min, max];
            },
          },
        },
        axes: [axis, { ...axis, size: 64 }],
        cursor: { drag: { x: true, y: false } },
        // The widest the time axis has been (seconds), for tests: its ticks are drawn, not text.
        hooks: {
          setScale: [
            (u, key) => {
              const { min, max } = u.scales.x;
              if (key !== "x" || min == null || max == null) return;
              el.dataset.widest = String(Math.max(Number(el.dataset.widest ?? 0), max - min));
            },
          ],
        },
        legend: { show: true },
      },
      [series.t, series.v],
      el
    );
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: 260 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // A new metric is a new chart; new points only update the data below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [label]);

  useEffect(() => {
    plot.current?.setData([series.t, series.v]);
  }, [series]);

  return <div class="chart" ref={box} role="img" aria-label={`Chart of ${label}`} />;
}
