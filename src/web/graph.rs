//! A run's DAG as inline SVG (the run page's `svg#dag`), laid out by `layout-rs` (a
//! Sugiyama-style layered layout: ranks, crossing reduction, placement); this module only
//! collects the positions it computes and writes the SVG, so the markup carries what the
//! page's CSS and JavaScript need: one `g.node[data-task=ID]` per task with the class
//! `state-STATE`, edges as `path.edge` from each dependency to its dependent.
//!
//! Above [`FULL_GRAPH_MAX_TASKS`] tasks the graph is summarised instead
//! ([`summary_svg`]): one `g.group[data-group=KEY]` per group of tasks, with a bar of its
//! tasks' states and their counts. The layout costs grow faster than linearly with the
//! number of nodes (docs/web.md gives the figures), and a browser handles an SVG of a few
//! thousand elements comfortably but not of a hundred thousand.
//!
//! Groups are the tasks' id prefixes ([`group_key`]: `fetch-0001`, `fetch-0002` and
//! `fetch[7]` are all `fetch`); when that leaves a single group or more than [`MAX_GROUPS`],
//! the tasks are grouped by dependency depth instead (bands of levels if there are very
//! many).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use layout::core::base::Orientation;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::{get_size_for_str, pad_shape_scalar, Point};
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;
use maud::{html, Markup, PreEscaped};

use crate::messages::control::TaskView;
use crate::model::{RunId, TaskState};

/// Most tasks drawn one node each; a run with more gets [`summary_svg`]. layout-rs's cost
/// grows about as n^2.5–3 (measured with its optimizers off, a layered DAG of two edges a
/// task: 500 tasks 28 ms in a release build and 186 ms in a debug one, 1,000 tasks 252 ms /
/// 1.5 s, 2,000 tasks 1.45 s / 10.6 s; docs/web.md).
pub const FULL_GRAPH_MAX_TASKS: usize = 500;

/// Most groups of a summarised graph (more prefixes than this: groups by depth).
pub const MAX_GROUPS: usize = 100;

/// Longest label drawn in a node, in characters (longer ids are cut with `…`; the whole id
/// is in the node's `<title>`).
const MAX_LABEL: usize = 28;

/// Font size of labels, px (also what layout-rs sizes the boxes by).
const FONT: usize = 14;

/// The run's DAG: [`full_svg`] up to [`FULL_GRAPH_MAX_TASKS`] tasks, [`summary_svg`] above.
/// CPU-bound (layout-rs); call it off the async threads for big runs.
pub fn dag_svg(run: RunId, tasks: &[TaskView]) -> Markup {
    if tasks.len() > FULL_GRAPH_MAX_TASKS {
        summary_svg(tasks)
    } else {
        full_svg(run, tasks)
    }
}

/// A node's box and an edge's path as layout-rs placed them.
struct Placed {
    /// (node index, top-left, size).
    boxes: Vec<(usize, Point, Point)>,
    /// (from node, to node, SVG path data).
    edges: Vec<(usize, usize, String)>,
    /// Bottom-right corner of everything drawn.
    extent: Point,
}

impl Default for Placed {
    fn default() -> Self {
        Placed {
            boxes: Vec::new(),
            edges: Vec::new(),
            extent: Point::zero(),
        }
    }
}

impl Placed {
    fn grow(&mut self, p: Point) {
        self.extent.x = self.extent.x.max(p.x);
        self.extent.y = self.extent.y.max(p.y);
    }
}

/// A layout-rs back end that records where things go instead of drawing them.
struct Collect(Placed);

impl RenderBackend for Collect {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        if let Some(i) = properties.and_then(|p| p.parse::<usize>().ok()) {
            self.0.grow(xy.add(size));
            self.0.boxes.push((i, xy, size));
        }
    }

    fn draw_line(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_circle(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_text(&mut self, _: Point, _: &str, _: &StyleAttr) {}

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        _dashed: bool,
        _head: (bool, bool),
        _look: &StyleAttr,
        properties: Option<String>,
        _text: &str,
    ) {
        let Some((from, to)) = properties.as_deref().and_then(|p| {
            let (a, b) = p.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        }) else {
            return;
        };
        if path.len() < 2 {
            return;
        }
        for (a, b) in path {
            self.0.grow(*a);
            self.0.grow(*b);
        }
        // As layout-rs's own SVG writer: a cubic Bézier through the connectors.
        let mut d = String::new();
        let _ = write!(
            d,
            "M{:.1} {:.1} C{:.1} {:.1},{:.1} {:.1},{:.1} {:.1}",
            path[0].0.x,
            path[0].0.y,
            path[0].1.x,
            path[0].1.y,
            path[1].0.x,
            path[1].0.y,
            path[1].1.x,
            path[1].1.y
        );
        for p in &path[2..] {
            let _ = write!(d, " S{:.1} {:.1},{:.1} {:.1}", p.0.x, p.0.y, p.1.x, p.1.y);
        }
        self.0.edges.push((from, to, d));
    }

    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

/// `label` cut to [`MAX_LABEL`] characters.
fn short(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(MAX_LABEL - 1).collect();
        s.push('…');
        s
    }
}

/// Most nodes for which layout-rs runs its rank and edge-crossing optimizers (above this
/// they cost more than the page may take; docs/web.md gives the figures).
pub const OPTIMIZE_MAX_NODES: usize = 150;

/// Lays out `labels` (box sizes from their text, `extra_height` px added) with the `edges`
/// (indices into `labels`) by layout-rs, top to bottom. `None` if layout-rs panicked (it
/// asserts on inputs it does not expect; a page must not die of it).
fn place(labels: &[String], extra_height: f64, edges: &[(usize, usize)]) -> Option<Placed> {
    place_with(
        labels,
        extra_height,
        edges,
        labels.len() <= OPTIMIZE_MAX_NODES,
    )
}

/// [`place`], with layout-rs's optimizers on or off. Its DAG self-check (`verify`, a
/// reachability search per edge after every edge added: cubic) is always off: the edges
/// come from a validated workflow, and layout-rs reverses any back edge anyway.
fn place_with(
    labels: &[String],
    extra_height: f64,
    edges: &[(usize, usize)],
    optimize: bool,
) -> Option<Placed> {
    if labels.is_empty() {
        return Some(Placed::default());
    }
    let labels = labels.to_vec();
    let edges = edges.to_vec();
    std::panic::catch_unwind(move || {
        let mut g = VisualGraph::new(Orientation::TopToBottom);
        g.dag.set_validate(false);
        let look = StyleAttr::simple();
        let handles: Vec<_> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut size = pad_shape_scalar(get_size_for_str(l, FONT), 12.);
                size.y += extra_height;
                let shape = ShapeKind::new_box(l);
                g.add_node(Element::create_with_properties(
                    shape,
                    look.clone(),
                    Orientation::TopToBottom,
                    size,
                    i.to_string(),
                ))
            })
            .collect();
        for &(a, b) in &edges {
            if a != b {
                let mut arrow = Arrow::simple("");
                arrow.properties = Some(format!("{a} {b}"));
                g.add_edge(arrow, handles[a], handles[b]);
            }
        }
        let mut out = Collect(Placed::default());
        g.do_it(false, !optimize, false, &mut out);
        out.0
    })
    .ok()
}

/// The arrowhead every edge ends with.
fn defs() -> Markup {
    html! {
        defs {
            marker #dag-arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8"
                markerHeight="8" orient="auto-start-reverse" {
                path d="M0 0 L10 5 L0 10 z" class="arrowhead";
            }
        }
    }
}

/// Percent-encodes a path segment (task ids may hold `[` and `]`).
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Every task as a node `g.node[data-task=ID]` of class `state-STATE` (a link to its task
/// page), every dependency as an edge `path.edge[data-from][data-to]`.
pub fn full_svg(run: RunId, tasks: &[TaskView]) -> Markup {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let edges: Vec<(usize, usize)> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            let index = &index;
            t.depends_on
                .iter()
                .filter_map(move |d| index.get(d.as_str()).map(|&j| (j, i)))
        })
        .collect();
    let labels: Vec<String> = tasks.iter().map(|t| short(t.id.as_str())).collect();
    let placed = place(&labels, 0.0, &edges).unwrap_or_else(|| grid(&labels));
    let (w, h) = (placed.extent.x + 10.0, placed.extent.y + 10.0);
    let view_box = format!("0 0 {w:.0} {h:.0}");
    html! {
        svg #dag xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) width=(format!("{w:.0}"))
            height=(format!("{h:.0}")) role="img"
            aria-label=(format!("the run's {} tasks and their dependencies", tasks.len())) {
            (defs())
            g.edges {
                @for (from, to, d) in &placed.edges {
                    path.edge d=(d) data-from=(tasks[*from].id.as_str())
                        data-to=(tasks[*to].id.as_str()) marker-end="url(#dag-arrow)" {}
                }
            }
            @for (i, xy, size) in &placed.boxes {
                @let t = &tasks[*i];
                g class=(format!("node state-{}", t.state.as_str())) data-task=(t.id.as_str()) {
                    title { (t.id.as_str()) " · " (t.state.as_str()) }
                    a href=(format!("/runs/{run}/tasks/{}", url_segment(t.id.as_str()))) {
                        rect x=(format!("{:.1}", xy.x)) y=(format!("{:.1}", xy.y))
                            width=(format!("{:.1}", size.x)) height=(format!("{:.1}", size.y))
                            rx="5" {}
                        text x=(format!("{:.1}", xy.x + size.x / 2.0))
                            y=(format!("{:.1}", xy.y + size.y / 2.0)) { (labels[*i]) }
                    }
                }
            }
        }
    }
}

/// Nodes in rows of 10 when layout-rs gave up: every task still shows, without edges.
fn grid(labels: &[String]) -> Placed {
    let mut p = Placed::default();
    for (i, l) in labels.iter().enumerate() {
        let size = pad_shape_scalar(get_size_for_str(l, FONT), 12.);
        let xy = Point::new(
            10.0 + (i % 10) as f64 * 240.0,
            10.0 + (i / 10) as f64 * 60.0,
        );
        p.grow(xy.add(size));
        p.boxes.push((i, xy, size));
    }
    p
}

/// The group a task belongs to in a summarised graph: its id up to the first `[`, `.` or
/// digit, without trailing `-`/`_` (`fetch-0001` → `fetch`, `shard.3` → `shard`,
/// `map[12]` → `map`); `#` for an id that starts with a digit.
pub fn group_key(id: &str) -> &str {
    let end = id
        .find(|c: char| c == '[' || c == '.' || c.is_ascii_digit())
        .unwrap_or(id.len());
    let key = id[..end].trim_end_matches(['-', '_']);
    if key.is_empty() {
        "#"
    } else {
        key
    }
}

/// How a summarised graph grouped its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// By [`group_key`].
    Prefix,
    /// By dependency depth (0: no dependencies), in bands when there are many levels.
    Depth,
}

/// Groups `tasks`: (grouping, group keys in first-seen order, each task's group index).
pub fn groups(tasks: &[TaskView]) -> (Grouping, Vec<String>, Vec<usize>) {
    let mut keys: Vec<String> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut of = Vec::with_capacity(tasks.len());
    for t in tasks {
        let k = group_key(t.id.as_str());
        let n = seen.len();
        let g = *seen.entry(k).or_insert(n);
        if g == keys.len() {
            keys.push(k.to_owned());
        }
        of.push(g);
        if keys.len() > MAX_GROUPS {
            break;
        }
    }
    // One prefix for every task says nothing: depth levels show the run's shape instead.
    if keys.len() > 1 && keys.len() <= MAX_GROUPS {
        return (Grouping::Prefix, keys, of);
    }
    let depth = depths(tasks);
    let levels = depth.iter().copied().max().map_or(0, |d| d + 1);
    let band = levels.div_ceil(MAX_GROUPS).max(1);
    let bands = levels.div_ceil(band);
    let keys = (0..bands)
        .map(|b| {
            let (lo, hi) = (b * band, ((b + 1) * band - 1).min(levels - 1));
            if lo == hi {
                format!("depth {lo}")
            } else {
                format!("depth {lo}–{hi}")
            }
        })
        .collect();
    (
        Grouping::Depth,
        keys,
        depth.iter().map(|d| d / band).collect(),
    )
}

/// Each task's dependency depth (longest path from a task without dependencies), iterative
/// so that a long chain cannot overflow the stack; a cycle (impossible in a valid run)
/// counts as depth 0.
fn depths(tasks: &[TaskView]) -> Vec<usize> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    const UNSEEN: usize = usize::MAX;
    const BUSY: usize = usize::MAX - 1;
    let mut depth = vec![UNSEEN; tasks.len()];
    for start in 0..tasks.len() {
        if depth[start] != UNSEEN {
            continue;
        }
        let mut stack = vec![start];
        while let Some(&i) = stack.last() {
            if depth[i] == UNSEEN {
                depth[i] = BUSY;
            }
            let mut waiting = false;
            let mut d = 0;
            for dep in &tasks[i].depends_on {
                let Some(&j) = index.get(dep.as_str()) else {
                    continue;
                };
                match depth[j] {
                    UNSEEN => {
                        stack.push(j);
                        waiting = true;
                    }
                    BUSY => {}
                    dj => d = d.max(dj + 1),
                }
            }
            if !waiting {
                depth[i] = d;
                stack.pop();
            }
        }
    }
    depth
}

/// Width of a group's state bar, px.
const BAR: f64 = 160.0;

/// One node per group (`g.group[data-group=KEY]`, class `state-STATE` of its most pressing
/// state), with its task count and a bar `rect.seg[data-state]` per state; edges where a
/// task of one group depends on a task of another.
pub fn summary_svg(tasks: &[TaskView]) -> Markup {
    let (grouping, keys, of) = groups(tasks);
    let mut counts: Vec<BTreeMap<TaskState, u32>> = vec![BTreeMap::new(); keys.len()];
    for (t, &g) in tasks.iter().zip(&of) {
        *counts[g].entry(t.state).or_default() += 1;
    }
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (t, &g) in tasks.iter().zip(&of) {
        for d in &t.depends_on {
            if let Some(&j) = index.get(d.as_str()) {
                if of[j] != g {
                    edges.push((of[j], g));
                }
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let labels: Vec<String> = keys
        .iter()
        .zip(&counts)
        .map(|(k, c)| {
            let label = format!("{} ×{}", short(k), c.values().sum::<u32>());
            // Wide enough for the bar.
            format!("{label:<24}")
        })
        .collect();
    let placed = place(&labels, 16.0, &edges).unwrap_or_else(|| grid(&labels));
    let (w, h) = (placed.extent.x + 10.0, placed.extent.y + 10.0);
    let by = match grouping {
        Grouping::Prefix => "prefix",
        Grouping::Depth => "depth",
    };
    html! {
        svg #dag .summary xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w:.0} {h:.0}"))
            width=(format!("{w:.0}")) height=(format!("{h:.0}")) data-grouping=(by) role="img"
            aria-label=(format!("{} tasks summarised in {} groups", tasks.len(), keys.len())) {
            (defs())
            g.edges {
                @for (from, to, d) in &placed.edges {
                    path.edge d=(d) data-from=(keys[*from]) data-to=(keys[*to])
                        marker-end="url(#dag-arrow)" {}
                }
            }
            @for (g, xy, size) in &placed.boxes {
                @let c = &counts[*g];
                @let total: u32 = c.values().sum();
                @let x0 = xy.x + (size.x - BAR) / 2.0;
                g class=(format!("group state-{}", pressing(c).as_str())) data-group=(keys[*g])
                    data-total=(total) {
                    title { (keys[*g]) ": " (breakdown(c)) }
                    rect x=(format!("{:.1}", xy.x)) y=(format!("{:.1}", xy.y))
                        width=(format!("{:.1}", size.x)) height=(format!("{:.1}", size.y)) rx="5" {}
                    text.label x=(format!("{:.1}", xy.x + size.x / 2.0))
                        y=(format!("{:.1}", xy.y + 18.0)) {
                        (short(&keys[*g])) " ×" (total)
                    }
                    (PreEscaped(bar(c, total, x0, xy.y + size.y - 16.0)))
                }
            }
        }
    }
}

/// The state a group is coloured by: running, then failed, then waiting, then done.
fn pressing(c: &BTreeMap<TaskState, u32>) -> TaskState {
    use TaskState::*;
    [
        Running,
        Retrying,
        Failed,
        AwaitingApproval,
        UpstreamFailed,
        Cancelled,
        Suspended,
        Ready,
        Pending,
        Compensated,
        Succeeded,
    ]
    .into_iter()
    .find(|s| c.get(s).is_some_and(|&n| n > 0))
    .unwrap_or(Pending)
}

/// `succeeded 9000, running 4` for a group's `<title>`.
fn breakdown(c: &BTreeMap<TaskState, u32>) -> String {
    c.iter()
        .map(|(s, n)| format!("{} {n}", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The group's bar: one `rect.seg` per state in [`TaskState::ALL`] order, widths in
/// proportion to the counts (only numbers and state names go in, so the text needs no
/// escaping).
fn bar(c: &BTreeMap<TaskState, u32>, total: u32, x0: f64, y: f64) -> String {
    let mut out = String::new();
    let mut x = x0;
    for s in TaskState::ALL {
        let n = c.get(&s).copied().unwrap_or(0);
        let w = if total == 0 {
            0.0
        } else {
            BAR * f64::from(n) / f64::from(total)
        };
        let _ = write!(
            out,
            r#"<rect class="seg state-{s}" data-state="{s}" data-count="{n}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="8"></rect>"#,
            s = s.as_str()
        );
        x += w;
    }
    out
}

#[cfg(test)]
#[path = "graph_tests.rs"]
pub(crate) mod tests;
