// A small SVG line-plot writer for the simulator's result plots (no plotting dependency).
//
// Pure function; thread-safe.
//
//   LinePlot plot{.title = "Test accuracy", .x_label = "round", .y_label = "accuracy"};
//   plot.series.push_back({"seed 1", xs, ys});
//   std::string svg = RenderSvg(plot);
#pragma once

#include <string>
#include <vector>

namespace edgefl::simulations {

struct PlotSeries {
  std::string name;
  std::vector<double> x;  // same length as y; NaN points are skipped (gaps)
  std::vector<double> y;
};

struct LinePlot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
};

// A standalone 640x400 SVG document: axes with 5 ticks each, one polyline per series, a legend.
// Empty or all-NaN input gives a valid SVG with empty axes.
std::string RenderSvg(const LinePlot& plot);

}  // namespace edgefl::simulations
