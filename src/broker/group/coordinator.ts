/**
 * The consumer-group coordinator: Kafka's classic group protocol
 * (JoinGroup → SyncGroup → Heartbeat, LeaveGroup), one node. Committed offsets
 * live in the OffsetStore. Like Kafka (which keeps group metadata in
 * __consumer_offsets), every group that becomes Stable is snapshotted to
 * `statePath`, so after a broker restart its members keep heartbeating and
 * committing in their generation instead of rejoining and redoing work; a
 * member that does not come back times out as usual (`snapshot.ts`; the group and
 * member types are in `model.ts`).
 *
 * States as in Kafka's GroupMetadata:
 *   Empty ──join──► PreparingRebalance ──all joined / rebalance timeout──► CompletingRebalance
 *   CompletingRebalance ──leader's SyncGroup──► Stable
 *   Stable / CompletingRebalance ──join, leave, session timeout──► PreparingRebalance
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../config/logger.js';
import { ErrorCode } from '../errors.js';
import { EMPTY, type Group, type GroupState, type JoinRequest, type JoinResult, type Member, type SyncResult } from './model.js';
import { loadGroups, saveGroups } from './snapshot.js';

/** Session timeouts accepted (Kafka's broker defaults are 6 s..30 min; tests want shorter). */
const MIN_SESSION_TIMEOUT_MS = 100;
const MAX_SESSION_TIMEOUT_MS = 30 * 60_000;

export class GroupCoordinator {
  readonly groups = new Map<string, Group>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly tickMs = 100,
    private readonly statePath?: string,
  ) {}

  /** Restores the Stable groups of the last snapshot; their members get a fresh session timeout. */
  load(): void {
    if (!this.statePath) return;
    for (const group of loadGroups(this.statePath, this.logger)) this.groups.set(group.groupId, group);
  }

  private save(): void {
    if (this.statePath) saveGroups(this.statePath, this.groups.values(), this.logger);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      try {
        this.tick(Date.now());
      } catch (err) {
        this.logger.error({ err }, 'group coordinator tick failed');
      }
    }, this.tickMs);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const group of this.groups.values()) {
      for (const member of group.members.values()) this.failPending(member, ErrorCode.COORDINATOR_NOT_AVAILABLE);
    }
    this.groups.clear();
  }

  private failPending(member: Member, errorCode: number): void {
    member.pendingJoin?.({ errorCode, generationId: -1, protocolName: '', leader: '', memberId: member.memberId, members: [] });
    member.pendingJoin = undefined;
    member.pendingSync?.({ errorCode, assignment: EMPTY });
    member.pendingSync = undefined;
  }

  private joinError(errorCode: number, memberId: string): JoinResult {
    return { errorCode, generationId: -1, protocolName: '', leader: '', memberId, members: [] };
  }

  join(request: JoinRequest): Promise<JoinResult> {
    if (!request.groupId) return Promise.resolve(this.joinError(ErrorCode.INVALID_GROUP_ID, request.memberId));
    if (request.sessionTimeoutMs < MIN_SESSION_TIMEOUT_MS || request.sessionTimeoutMs > MAX_SESSION_TIMEOUT_MS) {
      return Promise.resolve(this.joinError(ErrorCode.INVALID_SESSION_TIMEOUT, request.memberId));
    }
    if (request.protocols.length === 0 || !request.protocolType)
      return Promise.resolve(this.joinError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, request.memberId));
    let group = this.groups.get(request.groupId);
    if (!group) {
      group = {
        groupId: request.groupId,
        state: 'Empty',
        generationId: 0,
        protocolType: '',
        protocolName: '',
        leaderId: '',
        members: new Map(),
        rebalanceDeadline: 0,
      };
      this.groups.set(group.groupId, group);
    }
    if (!request.memberId) this.dropUnreturnedMembers(group);
    if (group.members.size > 0) {
      if (group.protocolType !== request.protocolType) return Promise.resolve(this.joinError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, request.memberId));
      const others = [...group.members.values()].filter((m) => m.memberId !== request.memberId);
      const common = request.protocols.some((p) => others.every((m) => m.protocols.some((q) => q.name === p.name)));
      if (others.length > 0 && !common) {
        this.logger.warn({ group: group.groupId, protocols: request.protocols.map((p) => p.name) }, 'member rejected: no assignor in common with the group');
        return Promise.resolve(this.joinError(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, request.memberId));
      }
    }
    let member: Member | undefined;
    if (request.memberId) {
      member = group.members.get(request.memberId);
      if (!member) return Promise.resolve(this.joinError(ErrorCode.UNKNOWN_MEMBER_ID, request.memberId));
      member.restored = false;
    } else {
      member = {
        memberId: `${request.clientId || 'member'}-${randomUUID()}`,
        groupInstanceId: request.groupInstanceId,
        clientId: request.clientId,
        clientHost: request.clientHost,
        sessionTimeoutMs: request.sessionTimeoutMs,
        rebalanceTimeoutMs: request.rebalanceTimeoutMs,
        protocols: request.protocols,
        assignment: EMPTY,
        lastHeartbeat: Date.now(),
        pendingJoin: undefined,
        pendingSync: undefined,
      };
      group.members.set(member.memberId, member);
      this.logger.info({ group: group.groupId, member: member.memberId }, 'member joined');
    }
    group.protocolType = request.protocolType;
    member.protocols = request.protocols;
    member.sessionTimeoutMs = request.sessionTimeoutMs;
    member.rebalanceTimeoutMs = request.rebalanceTimeoutMs;
    member.lastHeartbeat = Date.now();
    // A second JoinGroup from the same member replaces the first (the client gave up on it).
    if (member.pendingJoin) this.failPending(member, ErrorCode.REBALANCE_IN_PROGRESS);
    const joined = member;
    const result = new Promise<JoinResult>((resolve) => {
      joined.pendingJoin = resolve;
    });
    if (group.state !== 'PreparingRebalance') this.prepareRebalance(group, `member ${member.memberId} joining`);
    this.maybeCompleteJoin(group);
    return result;
  }

  /**
   * A new member joins a group restored from the snapshot: members that have not
   * been heard from since the restart most likely died with the previous
   * process (the usual case when broker and consumers restart together), so
   * they are dropped now instead of holding the rebalance for their session
   * timeout. A survivor that was merely slow gets UNKNOWN_MEMBER_ID and rejoins.
   */
  private dropUnreturnedMembers(group: Group): void {
    for (const member of [...group.members.values()]) {
      if (!member.restored) continue;
      group.members.delete(member.memberId);
      this.logger.info({ group: group.groupId, member: member.memberId }, 'member from before the restart dropped: a new member joined before it came back');
    }
  }

  private prepareRebalance(group: Group, reason: string): void {
    this.logger.info({ group: group.groupId, reason, generation: group.generationId }, 'rebalance started');
    group.state = 'PreparingRebalance';
    let timeout = 0;
    for (const member of group.members.values()) {
      timeout = Math.max(timeout, member.rebalanceTimeoutMs);
      // Members waiting for their assignment must rejoin first.
      if (member.pendingSync) {
        member.pendingSync({ errorCode: ErrorCode.REBALANCE_IN_PROGRESS, assignment: EMPTY });
        member.pendingSync = undefined;
      }
    }
    group.rebalanceDeadline = Date.now() + timeout;
  }

  private maybeCompleteJoin(group: Group): void {
    if (group.state !== 'PreparingRebalance') return;
    for (const member of group.members.values()) if (!member.pendingJoin) return;
    this.completeJoin(group);
  }

  /** Ends the join phase: members that did not rejoin in time are dropped, the rest get the new generation. */
  private completeJoin(group: Group): void {
    for (const member of [...group.members.values()]) {
      if (!member.pendingJoin) {
        this.logger.info({ group: group.groupId, member: member.memberId }, 'member removed: did not rejoin within the rebalance timeout');
        group.members.delete(member.memberId);
      }
    }
    group.generationId++;
    if (group.members.size === 0) {
      group.state = 'Empty';
      group.leaderId = '';
      group.protocolName = '';
      this.save();
      return;
    }
    if (!group.members.has(group.leaderId)) group.leaderId = group.members.keys().next().value as string;
    const leader = group.members.get(group.leaderId)!;
    const members = [...group.members.values()];
    group.protocolName = leader.protocols.find((p) => members.every((m) => m.protocols.some((q) => q.name === p.name)))?.name ?? leader.protocols[0]!.name;
    group.state = 'CompletingRebalance';
    const now = Date.now();
    this.logger.info({ group: group.groupId, generation: group.generationId, members: members.length, protocol: group.protocolName }, 'rebalance joined');
    for (const member of members) {
      const resolve = member.pendingJoin!;
      member.pendingJoin = undefined;
      member.lastHeartbeat = now;
      member.assignment = EMPTY;
      resolve({
        errorCode: ErrorCode.NONE,
        generationId: group.generationId,
        protocolName: group.protocolName,
        leader: group.leaderId,
        memberId: member.memberId,
        members:
          member.memberId === group.leaderId
            ? members.map((m) => ({
                memberId: m.memberId,
                groupInstanceId: m.groupInstanceId,
                metadata: m.protocols.find((p) => p.name === group.protocolName)?.metadata ?? EMPTY,
              }))
            : [],
      });
    }
  }

  private check(groupId: string, generationId: number, memberId: string): { errorCode: number; group?: Group; member?: Member } {
    const group = this.groups.get(groupId);
    const member = group?.members.get(memberId);
    if (!group || !member) return { errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
    member.restored = false;
    if (generationId !== group.generationId) return { errorCode: ErrorCode.ILLEGAL_GENERATION, group, member };
    return { errorCode: ErrorCode.NONE, group, member };
  }

  sync(groupId: string, generationId: number, memberId: string, assignments: Array<{ memberId: string; assignment: Buffer }>): Promise<SyncResult> {
    const { errorCode, group, member } = this.check(groupId, generationId, memberId);
    if (errorCode !== ErrorCode.NONE || !group || !member) return Promise.resolve({ errorCode, assignment: EMPTY });
    member.lastHeartbeat = Date.now();
    if (group.state === 'PreparingRebalance') return Promise.resolve({ errorCode: ErrorCode.REBALANCE_IN_PROGRESS, assignment: EMPTY });
    if (group.state === 'Stable') return Promise.resolve({ errorCode: ErrorCode.NONE, assignment: member.assignment });
    const result = new Promise<SyncResult>((resolve) => {
      member.pendingSync = resolve;
    });
    if (memberId === group.leaderId) {
      const byMember = new Map(assignments.map((a) => [a.memberId, a.assignment]));
      for (const m of group.members.values()) m.assignment = byMember.get(m.memberId) ?? EMPTY;
      group.state = 'Stable';
      this.logger.info({ group: group.groupId, generation: group.generationId }, 'group stable');
      this.save();
      for (const m of group.members.values()) {
        const resolve = m.pendingSync;
        m.pendingSync = undefined;
        resolve?.({ errorCode: ErrorCode.NONE, assignment: m.assignment });
      }
    }
    return result;
  }

  heartbeat(groupId: string, generationId: number, memberId: string): number {
    const { errorCode, group, member } = this.check(groupId, generationId, memberId);
    if (errorCode !== ErrorCode.NONE || !group || !member) return errorCode;
    member.lastHeartbeat = Date.now();
    if (group.state === 'PreparingRebalance') return ErrorCode.REBALANCE_IN_PROGRESS;
    return ErrorCode.NONE;
  }

  leave(groupId: string, memberIds: string[]): Array<{ memberId: string; errorCode: number }> {
    const group = this.groups.get(groupId);
    const results = memberIds.map((memberId) => {
      const member = group?.members.get(memberId);
      if (!group || !member) return { memberId, errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
      this.failPending(member, ErrorCode.UNKNOWN_MEMBER_ID);
      group.members.delete(memberId);
      this.logger.info({ group: groupId, member: memberId }, 'member left');
      return { memberId, errorCode: ErrorCode.NONE };
    });
    if (group && results.some((r) => r.errorCode === ErrorCode.NONE)) this.membershipChanged(group, 'member left');
    return results;
  }

  private membershipChanged(group: Group, reason: string): void {
    if (group.members.size === 0) {
      group.generationId++;
      group.state = 'Empty';
      group.leaderId = '';
      group.protocolName = '';
      this.save();
      return;
    }
    if (group.state !== 'PreparingRebalance') this.prepareRebalance(group, reason);
    this.maybeCompleteJoin(group);
  }

  /**
   * Whether an OffsetCommit from this member may be stored. Commits with
   * generation -1 and no member id come from clients that assign partitions
   * themselves (kcat -C with -o, simple consumers) and are allowed while the
   * group has no members; commits for a group the coordinator has no state
   * for (right after a restart) are allowed too.
   */
  validateCommit(groupId: string, generationId: number, memberId: string): number {
    const group = this.groups.get(groupId);
    if (generationId < 0 && !memberId) return !group || group.members.size === 0 ? ErrorCode.NONE : ErrorCode.UNKNOWN_MEMBER_ID;
    // No state for the group at all: the broker restarted under a running consumer (membership
    // is not persisted). Its commit is for work it has done; refusing it would make the group
    // redo that work after rejoining. Once the group re-forms, stale generations are refused again.
    if (!group) return ErrorCode.NONE;
    const { errorCode } = this.check(groupId, generationId, memberId);
    if (errorCode !== ErrorCode.NONE) return errorCode;
    if (group!.state === 'CompletingRebalance') return ErrorCode.REBALANCE_IN_PROGRESS;
    this.groups.get(groupId)!.members.get(memberId)!.lastHeartbeat = Date.now();
    return ErrorCode.NONE;
  }

  /** Expires members whose session timed out and ends overdue join phases. */
  tick(now: number): void {
    for (const group of this.groups.values()) {
      const expired: string[] = [];
      for (const member of group.members.values()) {
        if (member.pendingJoin || member.pendingSync) continue;
        if (now - member.lastHeartbeat > member.sessionTimeoutMs) expired.push(member.memberId);
      }
      for (const memberId of expired) {
        this.logger.info({ group: group.groupId, member: memberId }, 'member removed: session timeout');
        group.members.delete(memberId);
      }
      if (expired.length > 0) this.membershipChanged(group, 'session timeout');
      if (group.state === 'PreparingRebalance' && now >= group.rebalanceDeadline) this.completeJoin(group);
    }
  }

  describe(groupId: string): {
    state: GroupState;
    protocolType: string;
    protocolName: string;
    members: Array<{ memberId: string; groupInstanceId: string | null; clientId: string; clientHost: string; metadata: Buffer; assignment: Buffer }>;
  } {
    const group = this.groups.get(groupId);
    if (!group) return { state: 'Dead', protocolType: '', protocolName: '', members: [] };
    return {
      state: group.state,
      protocolType: group.protocolType,
      protocolName: group.protocolName,
      members: [...group.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: m.protocols.find((p) => p.name === group.protocolName)?.metadata ?? EMPTY,
        assignment: m.assignment,
      })),
    };
  }
}
