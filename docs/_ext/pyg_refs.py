"""Cross-reference and docstring fixes for re-exported pyg_skeleton objects.

* **References.** Docstrings name objects by their defining module
  (``pyg_skeleton.nn.conv.hcsf_conv.HCSFConv``) or relative to the class
  they are written in (``:meth:`official``` inside ``HGNLoss``), while the
  API reference documents them where users import them from
  (``pyg_skeleton.nn.HGNLoss.official``). When such a reference is missing,
  this handler looks for exactly one documented ``pyg_skeleton`` object whose
  dotted name ends with the same components (``Class.member`` first, using
  the class the reference was written in; a bare name only for classes,
  functions and modules) and links to it. Anything else stays unresolved and
  fails the nitpicky build. Rewrites are logged with ``-v``.
* **Module-level data.** ``autodoc`` falls back to the docstring of the
  value's *type* for data without a doc comment in the importing module
  (``GRAPH_CONVS`` shows ``dict.__doc__``). This handler uses the ``#:``
  comment of the module that defines the name instead, or nothing.
"""
from __future__ import annotations

from sphinx.util import logging

logger = logging.getLogger(__name__)
_TOP_LEVEL = ('class', 'function', 'module', 'exception', 'data')


def _find(domain, tail, objtypes=None):
    hits = [name for name, obj in domain.objects.items()
            if name.startswith('pyg_skeleton.') and (name == tail or name.endswith('.' + tail))
            and (objtypes is None or obj.objtype in objtypes)]
    return hits[0] if len(hits) == 1 else None


def _resolve(app, env, node, contnode):
    if node.get('refdomain') != 'py':
        return None
    target = node.get('reftarget', '').lstrip('~.')
    if not target or ' ' in target:
        return None
    domain = env.get_domain('py')
    parts = target.split('.')
    hit = None
    cls = node.get('py:class')
    if cls and len(parts) == 1:  # a member named from inside its class
        hit = _find(domain, f"{cls.split('.')[-1]}.{target}")
    if hit is None and len(parts) >= 2:
        hit = _find(domain, '.'.join(parts[-2:]))
    if hit is None and (len(parts) == 1 or parts[0] == 'pyg_skeleton'):
        hit = _find(domain, parts[-1], _TOP_LEVEL)
    if hit is None:
        return None
    logger.verbose('pyg_refs: %s -> %s', target, hit)
    from sphinx.util.nodes import make_refnode
    obj = domain.objects[hit]
    return make_refnode(app.builder, node['refdoc'], obj.docname, obj.node_id, contnode, hit)


def _data_docstring(app, what, name, obj, options, lines):
    if what not in ('data', 'attribute') or not name.startswith('pyg_skeleton.'):
        return
    type_doc = type(obj).__doc__
    if not type_doc or '\n'.join(lines).strip() != _clean(type_doc):
        return
    import sys

    from sphinx.pycode import ModuleAnalyzer
    short = name.rsplit('.', 1)[-1]
    comment = None
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith('pyg_skeleton') or getattr(module, short, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:
            continue
        if ('', short) in docs:
            comment = list(docs[('', short)])
            break
    lines[:] = comment or []


def _clean(doc):
    import inspect
    return inspect.cleandoc(doc).strip()


def setup(app):
    app.connect('missing-reference', _resolve)
    app.connect('autodoc-process-docstring', _data_docstring)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}
