"""jaxstyle: neural style transfer (Gatys et al.) in JAX."""

from jaxstyle.errors import JaxstyleError as JaxstyleError
from jaxstyle.vgg import vgg_features as vgg_features
from jaxstyle.weights import VGG19Weights as VGG19Weights
from jaxstyle.weights import load_vgg19 as load_vgg19

__version__ = "0.1.0"
