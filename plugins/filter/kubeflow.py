# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters used by the nga4m.platform.kubeflow role (logic in module_utils/kubeflow.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.nga4m.platform.plugins.module_utils import kubeflow as _kf
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError


def _wrap(func):
    def inner(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NGA4MError as exc:
            raise AnsibleFilterError(str(exc)) from exc

    inner.__name__ = func.__name__
    inner.__doc__ = func.__doc__
    return inner


def kubeflow_phases(texts, cert_manager_namespace="cert-manager", cert_manager_instance="cert-manager",
                    dashboard_configmaps=None, menu_link=None):
    return _kf.split_phases(texts, cert_manager_namespace, cert_manager_instance, dashboard_configmaps, menu_link)


def kubeflow_menu_link(links_json, link, section="menuLinks"):
    return _kf.add_menu_link(links_json, link, section)


def kubeflow_menu_link_count(links_json, link_path, section="menuLinks"):
    return _kf.count_menu_links(links_json, link_path, section)


def kubeflow_failed_objects(definitions, result):
    return _kf.failed_objects(definitions, result)


def kubeflow_crds_pending(resources, names):
    return _kf.crds_pending(resources, names)


def kubeflow_workloads_pending(resources, wanted):
    return _kf.workloads_pending(resources, wanted)


def kubeflow_pick_configmaps(resources, candidates):
    return _kf.pick_configmaps(resources, candidates)


def kubeflow_dockerconfigjson(credentials):
    return _kf.dockerconfigjson(credentials)


def kubeflow_dex_user(phases, email, password_hash):
    return _kf.set_dex_user(phases, email, password_hash)


class FilterModule:
    """Kubeflow role filters."""

    def filters(self):
        return {
            "kubeflow_phases": _wrap(kubeflow_phases),
            "kubeflow_menu_link": _wrap(kubeflow_menu_link),
            "kubeflow_menu_link_count": _wrap(kubeflow_menu_link_count),
            "kubeflow_failed_objects": _wrap(kubeflow_failed_objects),
            "kubeflow_crds_pending": _wrap(kubeflow_crds_pending),
            "kubeflow_workloads_pending": _wrap(kubeflow_workloads_pending),
            "kubeflow_pick_configmaps": _wrap(kubeflow_pick_configmaps),
            "kubeflow_dockerconfigjson": _wrap(kubeflow_dockerconfigjson),
            "kubeflow_dex_user": _wrap(kubeflow_dex_user),
        }
