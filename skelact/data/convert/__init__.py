"""Converters from public datasets' raw files and other tools' pose files to PYSKL annotation dicts.

Each ``convert_*`` returns ``(data, summary)``; ``data`` is the PYSKL dict plus ``classes`` and
``layout``, ready for :func:`skelact.data.io.save_annotations`. Nothing is written to disk here.
"""

from skelact.data.convert._common import ConvertError, ConvertSummary
from skelact.data.convert.ntu import convert_ntu
from skelact.data.convert.numpy import convert_numpy
from skelact.data.convert.openpose import convert_openpose
from skelact.data.convert.penn import convert_penn
from skelact.data.convert.ucla import convert_ucla

__all__ = ["ConvertError", "ConvertSummary", "convert_ntu", "convert_numpy", "convert_openpose", "convert_penn",
           "convert_ucla"]
