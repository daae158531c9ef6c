// A time series drawn by uPlot: fits its container's width, zooms by dragging, resets on a
// double click; colours follow the page's theme.
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

export function Chart({ label, series }: { label: string; series: Series }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

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
        axes: [axis, { ...axis, size: 64 }],
        cursor: { drag: { x: true, y: false } },
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
