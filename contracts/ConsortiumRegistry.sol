// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./IConsortiumRegistry.sol";

/// @title Consortium membership, roles, status cards, admission votes and registered keys.
/// @notice Genesis members are set at deployment; later members are admitted when more than two
///         thirds of the members in good standing vote for them before the proposal expires.
///         The regulator warns (yellow card), suspends (red card), expels and reinstates members.
contract ConsortiumRegistry is IConsortiumRegistry {
    enum Role { NONE, INSURER, PLATFORM, TECH, AUDITOR, REGULATOR }
    enum Status { NONE, ACTIVE, WARNED, SUSPENDED, EXPELLED }

    struct Member {
        string name;
        Role role;
        Status status;
        string endpoint;
        bytes32 x25519Key;
        bytes32 paillierFingerprint;
        uint64 admittedAt;
    }

    struct Proposal {
        address candidate;
        address proposer;
        string name;
        Role role;
        string endpoint;
        bytes32 x25519Key;
        bytes32 paillierFingerprint;
        uint64 expiresAt;
        uint32 votes;
        bool executed;
    }

    error NotMember(address account);
    error MemberNotInGoodStanding(address account);
    error NotRegulator(address account);
    error AlreadyMember(address account);
    error InvalidRole();
    error InvalidAccount();
    error LengthMismatch();
    error NoGenesisMembers();
    error UnknownProposal(uint256 proposalId);
    error ProposalExpired(uint256 proposalId, uint64 expiresAt);
    error ProposalAlreadyExecuted(uint256 proposalId);
    error AlreadyVoted(uint256 proposalId, address voter);
    error InvalidLifetime(uint64 lifetime);
    error InvalidStatusChange(address account, Status from, Status to);
    error CannotSanctionSelf();

    event MemberAdmitted(address indexed account, Role indexed role, string name, uint256 proposalId);
    event MemberProposed(uint256 indexed proposalId, address indexed candidate, address indexed proposer, Role role, uint64 expiresAt);
    event VoteCast(uint256 indexed proposalId, address indexed voter, uint32 votes, uint32 electorate);
    event MemberStatusChanged(address indexed account, Status indexed status, address indexed by, bytes32 reasonHash);
    event MemberKeysRotated(address indexed account, bytes32 x25519Key, bytes32 paillierFingerprint);
    event MemberEndpointChanged(address indexed account, string endpoint);

    /// @notice Seconds a proposal stays open when the proposer does not say otherwise (7 days).
    uint64 public constant DEFAULT_PROPOSAL_LIFETIME = 7 days;
    uint64 public constant MAX_PROPOSAL_LIFETIME = 90 days;

    mapping(address => Member) private _members;
    address[] private _accounts;
    uint256 public goodStandingCount;

    Proposal[] private _proposals;
    mapping(uint256 => mapping(address => bool)) public hasVoted;

    modifier onlyGoodStanding() {
        _requireGoodStanding(msg.sender);
        _;
    }

    modifier onlyRegulator() {
        _requireGoodStanding(msg.sender);
        if (_members[msg.sender].role != Role.REGULATOR) revert NotRegulator(msg.sender);
        _;
    }

    /// @param accounts genesis member accounts
    /// @param names display names, one per account
    /// @param roles roles (uint8 of Role), one per account
    /// @param endpoints node endpoints (URLs), one per account
    /// @param x25519Keys X25519 public keys, one per account
    /// @param paillierFingerprints Paillier public-key fingerprints, one per account
    constructor(
        address[] memory accounts,
        string[] memory names,
        Role[] memory roles,
        string[] memory endpoints,
        bytes32[] memory x25519Keys,
        bytes32[] memory paillierFingerprints
    ) {
        uint256 n = accounts.length;
        if (n == 0) revert NoGenesisMembers();
        if (names.length != n || roles.length != n || endpoints.length != n || x25519Keys.length != n
            || paillierFingerprints.length != n) revert LengthMismatch();
        for (uint256 i = 0; i < n; i++) {
            _admit(accounts[i], names[i], roles[i], endpoints[i], x25519Keys[i], paillierFingerprints[i], type(uint256).max);
        }
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IConsortiumRegistry
    function isInGoodStanding(address account) public view returns (bool) {
        Status s = _members[account].status;
        return s == Status.ACTIVE || s == Status.WARNED;
    }

    /// @inheritdoc IConsortiumRegistry
    function isMember(address account) public view returns (bool) {
        return _members[account].status != Status.NONE;
    }

    /// @notice The registered record of `account` (status NONE when not a member).
    function getMember(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @notice Number of accounts ever admitted.
    function memberCount() external view returns (uint256) {
        return _accounts.length;
    }

    /// @notice The `index`-th admitted account, in admission order.
    function memberAt(uint256 index) external view returns (address) {
        return _accounts[index];
    }

    /// @notice Number of admission proposals ever made.
    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    /// @notice A proposal by id (ids start at 1).
    function getProposal(uint256 proposalId) external view returns (Proposal memory) {
        return _proposals[_proposalIndex(proposalId)];
    }

    // ---------------------------------------------------------------- admission

    /// @notice Propose admitting `candidate`; members in good standing then vote with `vote`.
    /// @param lifetime seconds the proposal stays open (0 for the default of 7 days)
    /// @return proposalId the new proposal's id
    function propose(
        address candidate,
        string calldata name,
        Role role,
        string calldata endpoint,
        bytes32 x25519Key,
        bytes32 paillierFingerprint,
        uint64 lifetime
    ) external onlyGoodStanding returns (uint256 proposalId) {
        if (candidate == address(0)) revert InvalidAccount();
        if (isMember(candidate)) revert AlreadyMember(candidate);
        if (role == Role.NONE) revert InvalidRole();
        if (lifetime == 0) lifetime = DEFAULT_PROPOSAL_LIFETIME;
        if (lifetime > MAX_PROPOSAL_LIFETIME) revert InvalidLifetime(lifetime);
        uint64 expiresAt = uint64(block.timestamp) + lifetime;
        _proposals.push(Proposal(candidate, msg.sender, name, role, endpoint, x25519Key, paillierFingerprint, expiresAt, 0, false));
        proposalId = _proposals.length;
        emit MemberProposed(proposalId, candidate, msg.sender, role, expiresAt);
    }

    /// @notice Vote for a proposal; the candidate is admitted by the vote that takes the tally above
    ///         two thirds of the members currently in good standing.
    function vote(uint256 proposalId) external onlyGoodStanding {
        Proposal storage p = _proposals[_proposalIndex(proposalId)];
        if (p.executed) revert ProposalAlreadyExecuted(proposalId);
        if (block.timestamp >= p.expiresAt) revert ProposalExpired(proposalId, p.expiresAt);
        if (hasVoted[proposalId][msg.sender]) revert AlreadyVoted(proposalId, msg.sender);
        if (isMember(p.candidate)) revert AlreadyMember(p.candidate);
        hasVoted[proposalId][msg.sender] = true;
        p.votes += 1;
        uint32 electorate = uint32(goodStandingCount);
        emit VoteCast(proposalId, msg.sender, p.votes, electorate);
        if (uint256(p.votes) * 3 > uint256(electorate) * 2) {
            p.executed = true;
            _admit(p.candidate, p.name, p.role, p.endpoint, p.x25519Key, p.paillierFingerprint, proposalId);
        }
    }

    // ---------------------------------------------------------------- self-service

    /// @notice Rotate the caller's X25519 key and Paillier key fingerprint.
    function rotateKeys(bytes32 x25519Key, bytes32 paillierFingerprint) external onlyGoodStanding {
        Member storage m = _members[msg.sender];
        m.x25519Key = x25519Key;
        m.paillierFingerprint = paillierFingerprint;
        emit MemberKeysRotated(msg.sender, x25519Key, paillierFingerprint);
    }

    /// @notice Change the caller's node endpoint.
    function setEndpoint(string calldata endpoint) external onlyGoodStanding {
        _members[msg.sender].endpoint = endpoint;
        emit MemberEndpointChanged(msg.sender, endpoint);
    }

    // ---------------------------------------------------------------- regulator cards

    /// @notice Yellow card: the member keeps acting but is flagged.
    function warn(address account, bytes32 reasonHash) external onlyRegulator {
        _setStatus(account, Status.WARNED, reasonHash);
    }

    /// @notice Red card: the member can change no state until reinstated.
    function suspend(address account, bytes32 reasonHash) external onlyRegulator {
        _setStatus(account, Status.SUSPENDED, reasonHash);
    }

    /// @notice Expel a member; like suspension, but meant to be final (reinstatement still possible).
    function expel(address account, bytes32 reasonHash) external onlyRegulator {
        _setStatus(account, Status.EXPELLED, reasonHash);
    }

    /// @notice Return a warned, suspended or expelled member to ACTIVE.
    function reinstate(address account, bytes32 reasonHash) external onlyRegulator {
        _setStatus(account, Status.ACTIVE, reasonHash);
    }

    // ---------------------------------------------------------------- internals

    function _requireGoodStanding(address account) internal view {
        if (!isInGoodStanding(account)) {
            if (!isMember(account)) revert NotMember(account);
            revert MemberNotInGoodStanding(account);
        }
    }

    function _proposalIndex(uint256 proposalId) internal view returns (uint256) {
        if (proposalId == 0 || proposalId > _proposals.length) revert UnknownProposal(proposalId);
        return proposalId - 1;
    }

    function _admit(
        address account,
        string memory name,
        Role role,
        string memory endpoint,
        bytes32 x25519Key,
        bytes32 paillierFingerprint,
        uint256 proposalId
    ) internal {
        if (account == address(0)) revert InvalidAccount();
        if (role == Role.NONE) revert InvalidRole();
        if (isMember(account)) revert AlreadyMember(account);
        _members[account] = Member(name, role, Status.ACTIVE, endpoint, x25519Key, paillierFingerprint, uint64(block.timestamp));
        _accounts.push(account);
        goodStandingCount += 1;
        emit MemberAdmitted(account, role, name, proposalId);
    }

    function _setStatus(address account, Status to, bytes32 reasonHash) internal {
        if (!isMember(account)) revert NotMember(account);
        if (account == msg.sender) revert CannotSanctionSelf();
        Status from = _members[account].status;
        if (from == to) revert InvalidStatusChange(account, from, to);
        bool wasGood = isInGoodStanding(account);
        _members[account].status = to;
        bool isGood = isInGoodStanding(account);
        if (wasGood && !isGood) goodStandingCount -= 1;
        if (!wasGood && isGood) goodStandingCount += 1;
        emit MemberStatusChanged(account, to, msg.sender, reasonHash);
    }
}
