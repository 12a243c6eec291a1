/**
 * One alert stage per consumer group on `predictions`. The stage restores its detectors and
 * alerts at start only; a second member handed partitions by a rebalance has no state for
 * them, so alerts would be missed or raised twice. Multi-instance support is not built: this
 * says so, loudly, whenever the group has more than one member after a join.
 */
import type { Consumer, ConsumerGroupJoinEvent } from 'kafkajs';
import type { Logger } from '../config/logger.js';

export function watchGroupMembers(consumer: Consumer, groupId: string, topic: string, logger: Logger): void {
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }: ConsumerGroupJoinEvent) => {
    const shared = (members?: number, hosts?: string[]) => {
      logger.error(
        {
          groupId,
          topic,
          ...(members === undefined ? {} : { members, hosts }),
          memberId: payload.memberId,
          leaderId: payload.leaderId,
          assigned: payload.memberAssignment,
        },
        `alert stage: consumer group ${groupId} on ${topic} has ${members === undefined ? 'more than one member' : `${members} members`}; run one alert stage per group. ` +
          'Its state is restored at start only, so a member that a rebalance hands partitions has no detector state or firing alerts for them (missed or repeated alerts). Stop the other alert stages',
      );
    };
    // The leader is another member: shared for certain, whatever describing the group says.
    if (!payload.isLeader) return shared();
    consumer.describeGroup().then(
      (group) => {
        if (group.members.length > 1)
          shared(
            group.members.length,
            group.members.map((m) => m.clientHost),
          );
      },
      (err: Error) => logger.debug({ groupId, err: err.message }, 'could not describe the alert consumer group to count its members'),
    );
  });
}
