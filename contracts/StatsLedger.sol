// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";

/// @title Joint-statistics jobs: spec, participants, key, contribution commitments and result.
/// @notice The requester opens a job; each participant commits the hash of its encrypted
///         contribution once; the requester publishes the result hash once all have committed,
///         or anyone involved aborts the job once its deadline has passed.
contract StatsLedger is MemberGated {
    enum JobState { NONE, OPEN, PUBLISHED, ABORTED }

    struct Job {
        address requester;
        bytes32 specHash;
        bytes32 keyFingerprint;
        uint32 minCohort;
        uint64 deadline;
        uint64 openedAt;
        JobState state;
        uint32 committed;
        bytes32 resultHash;
    }

    error NoParticipants();
    error DuplicateParticipant(address participant);
    error ParticipantNotInGoodStanding(address participant);
    error InvalidMinCohort();
    error DeadlinePassed(uint64 deadline);
    error DeadlineNotPassed(uint64 deadline);
    error UnknownJob(uint256 jobId);
    error JobNotOpen(uint256 jobId, JobState state);
    error NotParticipant(uint256 jobId, address caller);
    error AlreadyCommitted(uint256 jobId, address participant);
    error NotRequester(uint256 jobId, address caller);
    error MissingContributions(uint256 jobId, uint32 committed, uint32 expected);
    error EmptyHash();

    event JobOpened(uint256 indexed jobId, address indexed requester, bytes32 indexed specHash, address[] participants, bytes32 keyFingerprint, uint32 minCohort, uint64 deadline);
    event ContributionCommitted(uint256 indexed jobId, address indexed participant, bytes32 ciphertextHash);
    event ResultPublished(uint256 indexed jobId, address indexed requester, bytes32 resultHash);
    event JobAborted(uint256 indexed jobId, address indexed by, uint32 committed, uint32 expected);

    Job[] private _jobs;
    mapping(uint256 => address[]) private _participants;
    mapping(uint256 => mapping(address => bool)) public isParticipant;
    mapping(uint256 => mapping(address => bytes32)) public commitmentOf;

    constructor(IConsortiumRegistry registry_) MemberGated(registry_) {}

    /// @notice Open a job over `participants`' data, encrypted under the key with `keyFingerprint`.
    /// @param minCohort smallest bucket size that may be released (k)
    /// @param deadline time by which every participant must have committed
    /// @return jobId the new job's id (ids start at 1)
    function openJob(bytes32 specHash, address[] calldata participants, bytes32 keyFingerprint, uint32 minCohort, uint64 deadline)
        external
        onlyGoodStanding
        returns (uint256 jobId)
    {
        if (specHash == bytes32(0) || keyFingerprint == bytes32(0)) revert EmptyHash();
        if (participants.length == 0) revert NoParticipants();
        if (minCohort == 0) revert InvalidMinCohort();
        if (deadline <= block.timestamp) revert DeadlinePassed(deadline);
        _jobs.push(Job(msg.sender, specHash, keyFingerprint, minCohort, deadline, uint64(block.timestamp), JobState.OPEN, 0, bytes32(0)));
        jobId = _jobs.length;
        for (uint256 i = 0; i < participants.length; i++) {
            address p = participants[i];
            if (!registry.isInGoodStanding(p)) revert ParticipantNotInGoodStanding(p);
            if (isParticipant[jobId][p]) revert DuplicateParticipant(p);
            isParticipant[jobId][p] = true;
        }
        _participants[jobId] = participants;
        emit JobOpened(jobId, msg.sender, specHash, participants, keyFingerprint, minCohort, deadline);
    }

    /// @notice Commit the hash of the caller's contribution to an open job, once, before the deadline.
    function commitContribution(uint256 jobId, bytes32 ciphertextHash) external onlyGoodStanding {
        Job storage j = _openJob(jobId);
        if (!isParticipant[jobId][msg.sender]) revert NotParticipant(jobId, msg.sender);
        if (ciphertextHash == bytes32(0)) revert EmptyHash();
        if (commitmentOf[jobId][msg.sender] != bytes32(0)) revert AlreadyCommitted(jobId, msg.sender);
        if (block.timestamp >= j.deadline) revert DeadlinePassed(j.deadline);
        commitmentOf[jobId][msg.sender] = ciphertextHash;
        j.committed += 1;
        emit ContributionCommitted(jobId, msg.sender, ciphertextHash);
    }

    /// @notice Publish the hash of the released result; the requester only, once all have committed.
    function publishResult(uint256 jobId, bytes32 resultHash) external onlyGoodStanding {
        Job storage j = _openJob(jobId);
        if (j.requester != msg.sender) revert NotRequester(jobId, msg.sender);
        if (resultHash == bytes32(0)) revert EmptyHash();
        uint32 expected = uint32(_participants[jobId].length);
        if (j.committed != expected) revert MissingContributions(jobId, j.committed, expected);
        j.state = JobState.PUBLISHED;
        j.resultHash = resultHash;
        emit ResultPublished(jobId, msg.sender, resultHash);
    }

    /// @notice Abort an open job once its deadline has passed; by the requester or a participant.
    function abort(uint256 jobId) external onlyGoodStanding {
        Job storage j = _openJob(jobId);
        if (j.requester != msg.sender && !isParticipant[jobId][msg.sender]) revert NotParticipant(jobId, msg.sender);
        if (block.timestamp < j.deadline) revert DeadlineNotPassed(j.deadline);
        j.state = JobState.ABORTED;
        emit JobAborted(jobId, msg.sender, j.committed, uint32(_participants[jobId].length));
    }

    /// @notice A job by id.
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _jobs[_index(jobId)];
    }

    /// @notice The participants of a job.
    function participantsOf(uint256 jobId) external view returns (address[] memory) {
        _index(jobId);
        return _participants[jobId];
    }

    /// @notice Number of jobs ever opened.
    function jobCount() external view returns (uint256) {
        return _jobs.length;
    }

    function _openJob(uint256 jobId) internal view returns (Job storage j) {
        j = _jobs[_index(jobId)];
        if (j.state != JobState.OPEN) revert JobNotOpen(jobId, j.state);
    }

    function _index(uint256 jobId) internal view returns (uint256) {
        if (jobId == 0 || jobId > _jobs.length) revert UnknownJob(jobId);
        return jobId - 1;
    }
}
