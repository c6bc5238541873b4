r"""2D keypoints from detectors: formats as data, conversion to a lifter's
skeleton, and readers of detector output files.

.. code-block:: python

    from pyg_skeleton.keypoints import read_keypoints

    kp = read_keypoints("video_openpose/")          # folder of *_keypoints.json
    uv, mask = kp.convert("h36m17", min_confidence=0.3)
    # uv [K, 17, 2] float32 pixels, mask [K, 17] bool; kp.frame / kp.person
    # say which frame and person each row is

**Formats** (:func:`keypoint_formats`, files in
``pyg_skeleton/keypoints/formats/<name>.json``; each file's ``source``
says where its order comes from and ``notes`` how each map was chosen):

=================== ====== ==================================== ===============
name                joints order                                targets
=================== ====== ==================================== ===============
``coco17``          17     COCO keypoints (nose, eyes, ears,    h36m17, coco17
                           then arms and legs, left first)
``halpe26``         26     COCO-17, head top, neck, hip, toes,  h36m17, coco17
                           heels (AlphaPose)
``coco_wholebody``  133    COCO-17, 6 foot, 68 face, 2 x 21     h36m17, coco17
                           hand points
``mediapipe33``     33     MediaPipe Pose / BlazePose landmarks h36m17, coco17
``openpose_body25`` 25     OpenPose BODY_25 (MidHip at 8, feet  h36m17, coco17
                           19-24)
``openpose_coco18`` 18     OpenPose COCO (Neck at 1)            h36m17, coco17
``h36m17``          17     Human3.6M-17 (the skeleton preset)   h36m17
``h36m16``          16     Human3.6M-16 of SemGCN               h36m17
``mpi_inf_3dhp17``  17     MPI-INF-3DHP test set                h36m17
=================== ====== ==================================== ===============

For Human3.6M-17 the maps take the pelvis as the mean of the hips, the
thorax as the mean of the shoulders, the spine as the mean of the two, the
foot joints from the ankles, Neck/Nose from the nose, and the head top from
an annotated head top (Halpe) or as ``thorax + 2 (ear midpoint -
thorax)``; Human3.6M-16 has no Neck/Nose, which stays masked. Any
:class:`~pyg_skeleton.Skeleton` with a map of your own is a format too
(:meth:`KeypointFormat.from_skeleton`).

**Format files** are JSON objects::

    {"name": "coco17",
     "source": "where the joint order comes from",
     "joint_names": ["nose", "left_eye", ...],
     "flip_pairs": [[1, 2], ...],
     "confidence_range": [0, 1],                  (optional, default [0, 1])
     "targets": {"h36m17": {"Hip": {"mean": ["left_hip", "right_hip"]},
                            "RHip": "right_hip", ...,
                            "Head": {"lerp": [["left_shoulder", "right_shoulder"],
                                              ["left_ear", "right_ear"]], "t": 2.0}}},
     "notes": {"h36m17": "how the map was chosen"}}

A target joint is a source joint name, ``{"mean": [names]}`` (centroid),
``{"midpoint": [a, b]}``, ``{"lerp": [a, b], "t": t}`` (the point
:math:`(1 - t) a + t b`; :math:`t` outside :math:`[0, 1]` extrapolates),
where ``a`` and ``b`` are a joint name or a list of names (their centroid),
or ``null`` (always masked). When the target is a skeleton preset, the map
names all of its joints.

**Conversion** (:meth:`KeypointFormat.convert`): a source joint is visible
when its coordinates are finite and its confidence is at least
``min_confidence``; a synthesised joint is visible only when all its
sources are; masked joints are set to ``0``.

**Readers** (:func:`read_keypoints` picks one) return :class:`Keypoints`:
COCO results and annotation JSON (:func:`read_coco`), OpenPose per-frame
JSON folders (:func:`read_openpose`), MediaPipe landmark JSON
(:func:`read_mediapipe`) and ``.npy`` / ``.npz`` arrays
(:func:`read_array`). Joints at ``(0, 0)`` or with NaN coordinates are
missing (confidence 0). Files are never unpickled; JSON files and arrays
over :data:`MAX_FILE_BYTES` (1 GiB) are refused, and array headers are
checked against the bytes present before anything is allocated.
"""
from __future__ import annotations

from .formats import KeypointFormat, get_format, keypoint_formats
from .readers import (
                      MAX_FILE_BYTES,
                      Keypoints,
                      read_array,
                      read_coco,
                      read_keypoints,
                      read_mediapipe,
                      read_openpose,
)

__all__ = ['KeypointFormat', 'get_format', 'keypoint_formats', 'Keypoints', 'read_keypoints',
           'read_coco', 'read_openpose', 'read_mediapipe', 'read_array', 'MAX_FILE_BYTES']
