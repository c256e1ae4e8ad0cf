// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./IConsortiumRegistry.sol";

/// @title Consortium membership, roles, status cards, admission votes and registered keys.
/// @notice Genesis members are set at deployment. Later members are admitted, and members expelled,
///         when more than two thirds of the electorate vote for the proposal before it expires. The
///         electorate is every admitted member that is not expelled: a suspended member still counts
///         (it cannot vote while suspended), so suspending members never lowers the bar. Every role,
///         REGULATOR and AUDITOR included, is admitted by the same supermajority. The regulator warns
///         (yellow card), suspends (red card) and reinstates warned or suspended members on its own;
///         expulsion is final and only by vote.
contract ConsortiumRegistry is IConsortiumRegistry {
    enum Role { NONE, INSURER, PLATFORM, TECH, AUDITOR, REGULATOR }
    enum Status { NONE, ACTIVE, WARNED, SUSPENDED, EXPELLED }
    enum Action { ADMIT, EXPEL }

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
        Action action;
        bytes32 reasonHash;
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
    error AlreadyExpelled(address account);

    event MemberAdmitted(address indexed account, Role indexed role, string name, uint256 proposalId);
    event MemberProposed(uint256 indexed proposalId, address indexed candidate, address indexed proposer, Role role, uint64 expiresAt);
    event ExpulsionProposed(uint256 indexed proposalId, address indexed account, address indexed proposer, bytes32 reasonHash, uint64 expiresAt);
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
    /// @notice Members that are not expelled (ACTIVE, WARNED or SUSPENDED): the denominator of every vote.
    uint256 public electorate;

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

    /// @notice Votes a proposal needs now: more than two thirds of the electorate.
    function votesNeeded() public view returns (uint256) {
        return electorate * 2 / 3 + 1;
    }

    // ---------------------------------------------------------------- admission and expulsion

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
        uint64 expiresAt = _expiry(lifetime);
        _proposals.push(Proposal(candidate, msg.sender, name, role, endpoint, x25519Key, paillierFingerprint, expiresAt, 0, false,
                                 Action.ADMIT, bytes32(0)));
        proposalId = _proposals.length;
        emit MemberProposed(proposalId, candidate, msg.sender, role, expiresAt);
    }

    /// @notice Propose expelling `account` (final); passes by the same supermajority as an admission.
    /// @param lifetime seconds the proposal stays open (0 for the default of 7 days)
    /// @return proposalId the new proposal's id
    function proposeExpulsion(address account, bytes32 reasonHash, uint64 lifetime)
        external onlyGoodStanding returns (uint256 proposalId)
    {
        if (!isMember(account)) revert NotMember(account);
        if (_members[account].status == Status.EXPELLED) revert AlreadyExpelled(account);
        uint64 expiresAt = _expiry(lifetime);
        _proposals.push(Proposal(account, msg.sender, "", _members[account].role, "", bytes32(0), bytes32(0), expiresAt, 0, false,
                                 Action.EXPEL, reasonHash));
        proposalId = _proposals.length;
        emit ExpulsionProposed(proposalId, account, msg.sender, reasonHash, expiresAt);
    }

    /// @notice Vote for a proposal; it is carried out by the vote that takes the tally above two thirds
    ///         of the electorate (all members not expelled, suspended ones included).
    function vote(uint256 proposalId) external onlyGoodStanding {
        Proposal storage p = _proposals[_proposalIndex(proposalId)];
        if (p.executed) revert ProposalAlreadyExecuted(proposalId);
        if (block.timestamp >= p.expiresAt) revert ProposalExpired(proposalId, p.expiresAt);
        if (hasVoted[proposalId][msg.sender]) revert AlreadyVoted(proposalId, msg.sender);
        if (p.action == Action.ADMIT) {
            if (isMember(p.candidate)) revert AlreadyMember(p.candidate);
        } else if (_members[p.candidate].status == Status.EXPELLED) {
            revert AlreadyExpelled(p.candidate);
        }
        hasVoted[proposalId][msg.sender] = true;
        p.votes += 1;
        emit VoteCast(proposalId, msg.sender, p.votes, uint32(electorate));
        if (uint256(p.votes) * 3 > electorate * 2) {
            p.executed = true;
            if (p.action == Action.ADMIT) {
                _admit(p.candidate, p.name, p.role, p.endpoint, p.x25519Key, p.paillierFingerprint, proposalId);
            } else {
                _expel(p.candidate, p.reasonHash);
            }
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

    /// @notice Return a warned or suspended member to ACTIVE (an expelled member stays expelled).
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

    function _expiry(uint64 lifetime) internal view returns (uint64) {
        if (lifetime == 0) lifetime = DEFAULT_PROPOSAL_LIFETIME;
        if (lifetime > MAX_PROPOSAL_LIFETIME) revert InvalidLifetime(lifetime);
        return uint64(block.timestamp) + lifetime;
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
        electorate += 1;
        emit MemberAdmitted(account, role, name, proposalId);
    }

    function _setStatus(address account, Status to, bytes32 reasonHash) internal {
        if (!isMember(account)) revert NotMember(account);
        if (account == msg.sender) revert CannotSanctionSelf();
        Status from = _members[account].status;
        if (from == to || from == Status.EXPELLED) revert InvalidStatusChange(account, from, to);
        _changeStatus(account, to, reasonHash);
    }

    /// @dev Carried out by the vote that passes an expulsion proposal.
    function _expel(address account, bytes32 reasonHash) internal {
        _changeStatus(account, Status.EXPELLED, reasonHash);
        electorate -= 1;
    }

    function _changeStatus(address account, Status to, bytes32 reasonHash) internal {
        bool wasGood = isInGoodStanding(account);
        _members[account].status = to;
        bool isGood = isInGoodStanding(account);
        if (wasGood && !isGood) goodStandingCount -= 1;
        if (!wasGood && isGood) goodStandingCount += 1;
        emit MemberStatusChanged(account, to, msg.sender, reasonHash);
    }
}
