"""jaxstyle: neural style transfer (Gatys et al.) in JAX.

The whole public API is re-exported here.
"""

import sys

from jaxstyle.command_start import interrupts_noted

with interrupts_noted():  # the command's Ctrl-C while jax imports
    try:
        from jaxstyle.animation import AnimateResult as AnimateResult
        from jaxstyle.animation import animate as animate
        from jaxstyle.batch import BatchReport as BatchReport
        from jaxstyle.batch import batch as batch
        from jaxstyle.cells import CellsResult as CellsResult
        from jaxstyle.cells import initialize_distributed as initialize_distributed
        from jaxstyle.colors import luminance_image as luminance_image
        from jaxstyle.colors import match_color_histogram as match_color_histogram
        from jaxstyle.colors import match_luminance as match_luminance
        from jaxstyle.colors import rgb_to_yiq as rgb_to_yiq
        from jaxstyle.colors import with_content_colors as with_content_colors
        from jaxstyle.colors import yiq_to_rgb as yiq_to_rgb
        from jaxstyle.compiler import compiler_options as compiler_options
        from jaxstyle.compiler import enable_compilation_cache as enable_compilation_cache
        from jaxstyle.convert import convert as convert_weights
        from jaxstyle.errors import Interrupted as Interrupted
        from jaxstyle.errors import JaxstyleError as JaxstyleError
        from jaxstyle.estimate import Estimate as Estimate
        from jaxstyle.estimate import estimate as estimate
        from jaxstyle.examples import example_content as example_content
        from jaxstyle.examples import example_style as example_style
        from jaxstyle.images import load_image as load_image
        from jaxstyle.images import read_frames as read_frames
        from jaxstyle.images import save_animation as save_animation
        from jaxstyle.images import save_image as save_image
        from jaxstyle.live_view import LiveView as LiveView
        from jaxstyle.losses import content_loss as content_loss
        from jaxstyle.losses import extract_patches as extract_patches
        from jaxstyle.losses import gram_matrix as gram_matrix
        from jaxstyle.losses import mrf_loss as mrf_loss
        from jaxstyle.losses import style_layer_loss as style_layer_loss
        from jaxstyle.losses import style_loss as style_loss
        from jaxstyle.losses import total_variation_loss as total_variation_loss
        from jaxstyle.manifest import Job as Job
        from jaxstyle.manifest import read_manifest as read_manifest
        from jaxstyle.objective import LossArgs as LossArgs
        from jaxstyle.objective import LossWeights as LossWeights
        from jaxstyle.objective import Objective as Objective
        from jaxstyle.objective import Targets as Targets
        from jaxstyle.objective import compute_targets as compute_targets
        from jaxstyle.objective import loss_terms as loss_terms
        from jaxstyle.objective import make_loss_fn as make_loss_fn
        from jaxstyle.objective import total_loss as total_loss
        from jaxstyle.optimize import OptimizerConfig as OptimizerConfig
        from jaxstyle.plot import plot_losses as plot_losses
        from jaxstyle.plot import read_histories as read_histories
        from jaxstyle.presets import PRESETS as PRESETS
        from jaxstyle.presets import Preset as Preset
        from jaxstyle.recorded import recorded_run as recorded_run
        from jaxstyle.stylize import StylizeResult as StylizeResult
        from jaxstyle.stylize import step_image_path as step_image_path
        from jaxstyle.stylize import step_image_saver as step_image_saver
        from jaxstyle.stylize import stylize as stylize
        from jaxstyle.sweep import SweepResult as SweepResult
        from jaxstyle.sweep import plan_sweep as plan_sweep
        from jaxstyle.sweep import sweep as sweep
        from jaxstyle.sweep_output import write_sweep as write_sweep
        from jaxstyle.vgg import prepare_weights as prepare_weights
        from jaxstyle.vgg import vgg_features as vgg_features
        from jaxstyle.weights import VGG19Weights as VGG19Weights
        from jaxstyle.weights import fetch as fetch_weights
        from jaxstyle.weights import load_vgg19 as load_vgg19
    except ValueError as err:  # jax refuses a bad JAX_* environment variable when imported
        if "jax" in sys.modules:  # jax imported fine: the error is not the environment's
            raise
        _jax_error = err

        def __getattr__(name: str):
            """Each public name raises jax's error: deferred from ``import jaxstyle`` so
            that the command line can say it in one line (:func:`jaxstyle.cli._start_jax`)."""
            if name in __all__:
                raise _jax_error
            raise AttributeError(f"module 'jaxstyle' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "AnimateResult",
    "BatchReport",
    "CellsResult",
    "Interrupted",
    "Job",
    "Estimate",
    "JaxstyleError",
    "LiveView",
    "LossArgs",
    "LossWeights",
    "Objective",
    "OptimizerConfig",
    "PRESETS",
    "Preset",
    "StylizeResult",
    "SweepResult",
    "Targets",
    "VGG19Weights",
    "animate",
    "batch",
    "compiler_options",
    "compute_targets",
    "enable_compilation_cache",
    "content_loss",
    "convert_weights",
    "estimate",
    "example_content",
    "example_style",
    "fetch_weights",
    "extract_patches",
    "gram_matrix",
    "mrf_loss",
    "initialize_distributed",
    "load_image",
    "read_frames",
    "save_animation",
    "load_vgg19",
    "loss_terms",
    "luminance_image",
    "make_loss_fn",
    "match_color_histogram",
    "match_luminance",
    "plan_sweep",
    "plot_losses",
    "prepare_weights",
    "read_histories",
    "read_manifest",
    "recorded_run",
    "rgb_to_yiq",
    "save_image",
    "style_layer_loss",
    "style_loss",
    "step_image_path",
    "step_image_saver",
    "stylize",
    "sweep",
    "total_loss",
    "total_variation_loss",
    "vgg_features",
    "with_content_colors",
    "write_sweep",
    "yiq_to_rgb",
]
