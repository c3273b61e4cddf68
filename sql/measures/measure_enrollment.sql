-- measure_enrollment: per school and year, admissions and enrolled students from the
-- accepted enrollment submissions (one row per major and programme type).
-- Inputs: curated_enrollment, curated_graduates (graduates of the same school-year, for
-- 巩固率).
-- Output grain: one row per (year, school_code, measure_id).
with enrollment as (
    select * from curated_enrollment
),

per_school as (
    select
        year,
        school_code,
        sum(admissions_count)::double as admissions_count,
        sum(enrolled_count)::double as enrolled_students_count,
        sum(case when program_type = '中职' then enrolled_count else 0 end)::double
            as enrolled_secondary_students_count,
        sum(case when program_type = '技工' then enrolled_count else 0 end)::double
            as enrolled_technician_students_count,
        sum(coalesce(long_program_admissions_count, 0))::double as long_program_admissions_count,
        -- Optional (2024 contract): null for a school whose file lacks it.
        sum(cohort_entry_count)::double as cohort_entry_count
    from enrollment
    group by year, school_code
),

graduates as (
    select year, school_code, count(*)::double as graduates_count
    from curated_graduates
    group by year, school_code
),

with_retention as (
    -- 巩固率's numerator: the school's graduates, only where it reports the cohort's entrants,
    -- so that a region's ratio of sums pairs each numerator with its denominator.
    select
        per_school.*,
        case when per_school.cohort_entry_count is not null
            then coalesce(graduates.graduates_count, 0) end as retained_graduates_count
    from per_school
    left join graduates using (year, school_code)
),

final as (
    unpivot with_retention
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
