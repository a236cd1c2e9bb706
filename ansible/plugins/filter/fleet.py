# -*- coding: utf-8 -*-
# Copyright 2026 The libwrench authors; no licence stated (see COPYRIGHT).
"""Filters that sum the fire records of a fleet, read by the hits module on
each host, per failure point: fleet_fires makes the summary (a document a
job can keep as JSON), fleet_table prints it for a person."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError


def point_fires(records):
    """{(category, feature): fires} of one host. A point with several lines
    sums them; one whose fires are not counted on the machine (scope=process,
    or counters the agent cannot use) is None: unknown, not zero."""
    points = {}
    for r in records:
        key = (r['category'], r['feature'])
        known = isinstance(r.get('fires'), int)
        if key not in points:
            points[key] = r['fires'] if known else None
        elif points[key] is not None:
            points[key] = points[key] + r['fires'] if known else None
    return points


def fleet_fires(hits_by_host):
    """The fires of every point, per host and in total.

    hits_by_host maps each host to what the hits module returned there; a
    host whose task failed or did not run (no records) is listed in
    failed_hosts and counted nowhere, so that a missing answer never reads
    as zero fires.
    """
    if not isinstance(hits_by_host, dict):
        raise AnsibleFilterError('fleet_fires expects a dict of host: hits result, got %s'
                                 % type(hits_by_host).__name__)
    hosts, failed, per_host = [], [], {}
    for host in sorted(hits_by_host):
        result = hits_by_host[host]
        if not isinstance(result, dict) or result.get('failed') or 'records' not in result:
            failed.append(host)
            continue
        hosts.append(host)
        per_host[host] = point_fires(result['records'])

    keys = sorted(set(k for points in per_host.values() for k in points))
    points = []
    for category, feature in keys:
        fires = dict((h, per_host[h][(category, feature)]) for h in hosts
                     if (category, feature) in per_host[h])
        counted = [n for n in fires.values() if n is not None]
        points.append(dict(category=category, feature=feature, fires=fires,
                           total=sum(counted),
                           hosts_fired=sorted(h for h, n in fires.items() if n),
                           unknown_hosts=sorted(h for h, n in fires.items() if n is None)))
    return dict(hosts=hosts, failed_hosts=failed, points=points,
                total=sum(p['total'] for p in points))


def fleet_table(fleet):
    """fleet_fires' summary as a table: one row per point, one column per
    host, then the total. '-' is a host without a line for the point, '?' a
    count it cannot know (lines counted per process)."""
    hosts = fleet['hosts']
    header = ['POINT'] + hosts + ['TOTAL']
    rows = [header]
    for p in fleet['points']:
        cells = ['%s/%s' % (p['category'], p['feature'])]
        for h in hosts:
            n = p['fires'].get(h, '-')
            cells.append('?' if n is None else str(n))
        cells.append(str(p['total']) + ('+?' if p['unknown_hosts'] else ''))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ['  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.append('%d point(s), %d fire(s) on %d host(s)' % (
        len(fleet['points']), fleet['total'], len(hosts)))
    if fleet['failed_hosts']:
        lines.append('no records from: ' + ', '.join(fleet['failed_hosts']))
    return '\n'.join(lines)


class FilterModule(object):
    def filters(self):
        return {'fleet_fires': fleet_fires, 'fleet_table': fleet_table}
