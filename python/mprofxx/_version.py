"""mprofxx's version, in a module of its own: the package and its command modules import it
without the command modules importing the package's ``__init__`` back."""

__version__ = "0.1.0"
