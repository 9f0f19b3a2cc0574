"""Learning curves of a training run: ``curves.csv`` and ``curves.png`` in the experiment folder.

``LearningCurves`` collects what a run logs: the validation metrics of each set at each
validation (PSNR in dB, SSIM, as BasicSR computes them), the bicubic baseline of the same LR
inputs (constant per set), and the training losses averaged over windows of ``loss_every``
iterations. ``write(folder)`` draws the figure with matplotlib (Agg, no display needed): one
panel per metric with a line per set and the set's bicubic value as a dashed horizontal line,
and a panel with the losses (log scale). Both files are written atomically (``fileio``).
"""
import csv
import io
from dataclasses import dataclass, field
from os import path as osp
from typing import Any, Dict, List, Mapping, Optional, Tuple

from rt4ksr_arch.fileio import atomic_write_bytes

CSV_NAME, FIGURE_NAME = 'curves.csv', 'curves.png'
# series: val, bicubic or train; mean_of: the iterations a train row averages (the log prints single iterations)
CSV_HEADER = ('series', 'set', 'metric', 'iteration', 'value', 'mean_of')

Points = List[Tuple[int, float]]


@dataclass
class LearningCurves:
    """Validation metrics, bicubic baselines and window-mean training losses of one run.

    ``loss_every``: iterations per loss point (the run's logging interval). ``state_dict`` /
    ``load_state_dict`` carry the curves across a resume.
    """

    loss_every: int = 100
    metrics: Dict[str, Dict[str, Points]] = field(default_factory=dict)  # set -> metric -> [(iter, value)]
    baselines: Dict[str, Dict[str, float]] = field(default_factory=dict)  # set -> metric -> bicubic value
    losses: Dict[str, Points] = field(default_factory=dict)  # loss name -> [(iter, window mean)]
    _window: Dict[str, List[float]] = field(default_factory=dict)  # loss name -> [sum, count] since last point

    def add_loss(self, iteration: int, losses: Mapping[str, float]) -> None:
        """Add one iteration's losses; every ``loss_every`` iterations their window mean becomes a point."""
        for name, value in losses.items():
            window = self._window.setdefault(name, [0.0, 0])
            window[0] += float(value)
            window[1] += 1
        if iteration % self.loss_every == 0:
            for name, (total, count) in self._window.items():
                if count:
                    self.losses.setdefault(name, []).append((iteration, total / count))
            self._window = {}

    def add_validation(self, dataset: str, iteration: int, metrics: Mapping[str, float],
                       baseline: Optional[Mapping[str, float]] = None) -> None:
        """Record one validation of ``dataset`` (metric -> mean value) and, when given, its bicubic baseline.

        A second validation at the same iteration replaces the first (a resumed run repeats the last).
        """
        per_metric = self.metrics.setdefault(dataset, {})
        for name, value in metrics.items():
            points = [p for p in per_metric.get(name, []) if p[0] != iteration]
            per_metric[name] = sorted(points + [(iteration, float(value))])
        if baseline:
            self.baselines[dataset] = {k: float(v) for k, v in baseline.items()}

    def state_dict(self) -> Dict[str, Any]:
        """Plain Python data (lists, dicts, numbers) for a training state."""
        return {'loss_every': self.loss_every, 'metrics': self.metrics, 'baselines': self.baselines,
                'losses': self.losses}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the curves of ``state_dict()`` (the loss window restarts empty)."""
        self.loss_every = int(state['loss_every'])
        self.metrics = {s: {m: [(int(i), float(v)) for i, v in pts] for m, pts in per.items()}
                        for s, per in state['metrics'].items()}
        self.baselines = {s: dict(per) for s, per in state['baselines'].items()}
        self.losses = {n: [(int(i), float(v)) for i, v in pts] for n, pts in state['losses'].items()}
        self._window = {}

    def merge_validations(self, other: 'LearningCurves', up_to: int) -> None:
        """Add ``other``'s validations at iterations <= ``up_to`` that these curves lack, and its baselines.

        A resumed run's state was saved just before the validation of the same iteration, so that
        validation is only in the run's ``curves.csv`` (``from_csv``).
        """
        for dataset, per_metric in other.metrics.items():
            for metric, points in per_metric.items():
                known = {it for it, _ in self.metrics.get(dataset, {}).get(metric, [])}
                extra = {it: v for it, v in points if it <= up_to and it not in known}
                for it, value in extra.items():
                    self.add_validation(dataset, it, {metric: value})
        for dataset, baseline in other.baselines.items():
            self.baselines.setdefault(dataset, dict(baseline))

    @classmethod
    def from_csv(cls, text: str, loss_every: int = 100) -> 'LearningCurves':
        """The curves a ``csv()`` text holds (values as written there: 6 decimals, losses 6 digits)."""
        curves = cls(loss_every=loss_every)
        rows = list(csv.reader(io.StringIO(text)))
        # the header without mean_of: a run started before that column, resumed
        if not rows or tuple(rows[0]) not in (CSV_HEADER, CSV_HEADER[:5]):
            raise ValueError(f'not a learning-curves CSV (expected the header {",".join(CSV_HEADER)})')
        for series, dataset, metric, iteration, value, *_ in rows[1:]:
            if series == 'val':
                curves.add_validation(dataset, int(iteration), {metric: float(value)})
            elif series == 'bicubic':
                curves.baselines.setdefault(dataset, {})[metric] = float(value)
            elif series == 'train':
                curves.losses.setdefault(metric, []).append((int(iteration), float(value)))
        return curves

    def csv(self) -> str:
        """Every point as a row of ``CSV_HEADER``; bicubic rows have no iteration, only train rows a ``mean_of``."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\n')
        writer.writerow(CSV_HEADER)
        for dataset, per_metric in self.metrics.items():
            for metric, points in per_metric.items():
                writer.writerows(('val', dataset, metric, it, f'{value:.6f}', '') for it, value in points)
                if metric in self.baselines.get(dataset, {}):
                    writer.writerow(('bicubic', dataset, metric, '', f'{self.baselines[dataset][metric]:.6f}', ''))
        for name, points in self.losses.items():
            writer.writerows(('train', '', name, it, f'{value:.6g}', self.loss_every) for it, value in points)
        return buffer.getvalue()

    def figure_png(self, title: str = '') -> bytes:
        """The figure as PNG bytes: a panel per validation metric, then the training losses."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported here: training pays it, not import
        from matplotlib.figure import Figure

        metric_names = sorted({m for per in self.metrics.values() for m in per})
        panels = len(metric_names) + 1
        figure = Figure(figsize=(5.0 * panels, 3.8), layout='constrained')
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, panels, squeeze=False)[0]
        for ax, metric in zip(axes, metric_names):
            for index, (dataset, per_metric) in enumerate(sorted(self.metrics.items())):
                if metric not in per_metric:
                    continue
                color = f'C{index % 10}'
                its, values = zip(*per_metric[metric])
                ax.plot(its, values, 'o-', color=color, markersize=3, label=dataset)
                if metric in self.baselines.get(dataset, {}):
                    ax.axhline(self.baselines[dataset][metric], color=color, linestyle='--', linewidth=1,
                               label=f'{dataset} bicubic')
            ax.set(xlabel='iteration', ylabel=f'{metric} (dB)' if 'psnr' in metric else metric,
                   title=f'validation {metric}')
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        loss_ax = axes[-1]
        for name, points in sorted(self.losses.items()):
            its, values = zip(*points)
            loss_ax.plot(its, values, label=name)
        if self.losses:
            loss_ax.set_yscale('log')
            loss_ax.legend(fontsize=8)
        loss_ax.set(xlabel='iteration', ylabel='loss', title=f'training loss (mean of {self.loss_every} iterations)')
        loss_ax.grid(alpha=0.3)
        if title:
            figure.suptitle(title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format='png', dpi=100)
        return buffer.getvalue()

    def write(self, folder: str, title: str = '') -> Tuple[str, str]:
        """Write ``curves.csv`` and ``curves.png`` into ``folder`` (atomically); their paths."""
        csv_path, png_path = osp.join(folder, CSV_NAME), osp.join(folder, FIGURE_NAME)
        atomic_write_bytes(csv_path, self.csv().encode())
        atomic_write_bytes(png_path, self.figure_png(title))
        return csv_path, png_path
